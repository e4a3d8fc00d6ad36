import assert from "node:assert/strict";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import fc from "fast-check";
import { RingfenceError } from "../lib/errors.js";
import { controlCrcOffset, setSystemIdentifier, systemIdentifier } from "../lib/pg-control.js";
import { freePort } from "../lib/ports.js";
import {
  baseSettings,
  findPgBinaries,
  initPrimary,
  makeTemplate,
  pgRunAs,
  queryOnce,
  runToolAsync,
  signalGroup,
  spawnPostgres,
  waitReady,
  writeSettings,
} from "../lib/postgres.js";
import { loadTopology } from "../topology/load.js";
import { buildLayout } from "./layout.js";
import { seedCells } from "./seed.js";

const bin = findPgBinaries();
const runAs = pgRunAs();
let dir: string;
let template: string;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "ringfence-seed-test-"));
  chmodSync(dir, 0o755); // the postgres user must traverse it
  template = join(dir, "template");
  await makeTemplate(bin, template, runAs);
});

after(() => rmSync(dir, { recursive: true, force: true }));

/** What pg_controldata says `label` is for the cluster in `dataDir`. */
async function controlData(dataDir: string, label: string): Promise<string> {
  const out = await runToolAsync(bin, "pg_controldata", [dataDir], runAs);
  const line = out.split("\n").find((l) => l.startsWith(`${label}:`));
  assert.ok(line, `pg_controldata printed no "${label}"`);
  return line.slice(label.length + 1).trim();
}

test("a cluster copied from the template gets its own system identifier, which PostgreSQL accepts", async (t) => {
  if (!bin.hasResetwal) return t.skip("no pg_resetwal: clusters are made by initdb");
  const a = join(dir, "a");
  const b = join(dir, "b");
  assert.equal(await initPrimary(bin, a, runAs, { template }), "template");
  assert.equal(await initPrimary(bin, b, runAs, { template }), "template");
  assert.equal(
    await initPrimary(bin, b, runAs, { template }),
    undefined,
    "an existing cluster is left alone",
  );
  const ids = [systemIdentifier(template), systemIdentifier(a), systemIdentifier(b)];
  assert.equal(new Set(ids).size, 3, `identifiers ${ids.join(", ")}`);
  assert.equal(await controlData(a, "Database system identifier"), String(ids[1]));
  assert.ok(!existsSync(`${a}.partial`));

  const port = await freePort();
  writeSettings(a, baseSettings("127.0.0.1", port), runAs);
  const pg = spawnPostgres(bin, a, runAs, join(dir, "a.log"));
  try {
    await waitReady("127.0.0.1", port);
    const rows = await queryOnce(
      "127.0.0.1",
      port,
      "SELECT system_identifier::text AS id FROM pg_control_system()",
    );
    assert.deepEqual(rows, [{ id: String(ids[1]) }]);
  } finally {
    await new Promise<void>((resolve) => {
      pg.once("exit", () => resolve());
      signalGroup(pg, "SIGINT");
    });
  }
});

test("a damaged control file is refused, not rewritten", () => {
  const copy = join(dir, "damaged");
  mkdirSync(join(copy, "global"), { recursive: true });
  const control = readFileSync(join(template, "global", "pg_control"));
  const offset = controlCrcOffset(control);
  control[offset - 1] = (control[offset - 1] as number) ^ 0xff;
  const file = join(copy, "global", "pg_control");
  writeFileSync(file, control);
  for (const touch of [() => systemIdentifier(copy), () => setSystemIdentifier(copy, 1n)]) {
    assert.throws(touch, (err: unknown) => {
      assert.ok(err instanceof RingfenceError);
      assert.equal(err.code, "RINGFENCE_PG_FAILED");
      assert.match(err.message, /no valid CRC/);
      return true;
    });
  }
  assert.deepEqual(readFileSync(file), control, "left as it was");
});

test("the control file's CRC is found only where it holds", () => {
  const control = readFileSync(join(template, "global", "pg_control"));
  const offset = controlCrcOffset(control);
  fc.assert(
    fc.property(fc.integer({ min: 0, max: offset - 1 }), fc.integer({ min: 1, max: 255 }), (at, flip) => {
      const damaged = Buffer.from(control);
      damaged[at] = (damaged[at] as number) ^ flip;
      // Any change before the CRC breaks it; no other offset may pass for it.
      assert.throws(() => controlCrcOffset(damaged));
    }),
    { numRuns: 200 },
  );
});

test("a new world's cells are seeded: one cluster per cell, cold copies as standbys that stream from it", async () => {
  const topology = loadTopology();
  const layout = buildLayout(topology, 0);
  const root = join(dir, "world");
  mkdirSync(root, { mode: 0o755 }); // as the world's PostgreSQL root: the postgres user traverses it
  const dataDir = (slot: { id: string }) => join(root, slot.id.replace(/\//g, "-"));
  const seeded = await seedCells(topology, layout, { bin, runAs, dataDir, template });
  assert.equal(seeded.length, topology.cells.count);
  const ids = new Set<bigint>();
  for (const cell of topology.cells.list) {
    const s = seeded.find((c) => c.cell === cell.id);
    assert.ok(s, `${cell.id} seeded`);
    const slots = layout.databases.filter((d) => d.cell === cell.id);
    const primary = slots.find((d) => d.region === cell.home);
    assert.equal(s.primary, primary?.id);
    const cellIds = new Set(slots.map((d) => systemIdentifier(dataDir(d))));
    assert.equal(cellIds.size, 1, `${cell.id}: one system identifier for its instances`);
    for (const id of cellIds) ids.add(id);
    for (const slot of slots) {
      assert.equal(existsSync(join(dataDir(slot), "standby.signal")), slot !== primary, slot.id);
      assert.equal(await controlData(dataDir(slot), "wal_level setting"), "replica", slot.id);
    }
  }
  assert.equal(ids.size, topology.cells.count, "each cell its own system identifier");
  assert.deepEqual(await seedCells(topology, layout, { bin, runAs, dataDir, template }), [], "seeded once");

  // One cell for real: its primary, and a standby started from the cold copy, streaming.
  const cell = topology.cells.list[0];
  assert.ok(cell);
  const slots = layout.databases.filter((d) => d.cell === cell.id);
  const primarySlot = slots.find((d) => d.region === cell.home);
  const standbySlot = slots.find((d) => d !== primarySlot);
  assert.ok(primarySlot && standbySlot);
  const [pPort, sPort] = [await freePort(), await freePort()];
  writeSettings(dataDir(primarySlot), baseSettings("127.0.0.1", pPort), runAs);
  writeSettings(
    dataDir(standbySlot),
    {
      ...baseSettings("127.0.0.1", sPort),
      primary_conninfo: `host=127.0.0.1 port=${pPort} user=ringfence application_name=seeded`,
    },
    runAs,
  );
  const primary = spawnPostgres(bin, dataDir(primarySlot), runAs, join(dir, "p.log"));
  const standby = spawnPostgres(bin, dataDir(standbySlot), runAs, join(dir, "s.log"));
  try {
    await Promise.all([waitReady("127.0.0.1", pPort), waitReady("127.0.0.1", sPort)]);
    await queryOnce("127.0.0.1", pPort, "CREATE TABLE seeded (x int); INSERT INTO seeded VALUES (42)");
    let rows: unknown[] = [];
    for (let i = 0; i < 100 && rows.length === 0; i++) {
      rows = await queryOnce("127.0.0.1", sPort, "SELECT x FROM seeded").catch(() => []);
      if (rows.length === 0) await new Promise((r) => setTimeout(r, 100));
    }
    assert.deepEqual(rows, [{ x: 42 }], "the standby replayed the primary's write");
  } finally {
    for (const p of [standby, primary]) {
      await new Promise<void>((resolve) => {
        if (p.exitCode !== null || p.signalCode !== null) return resolve();
        p.once("exit", () => resolve());
        signalGroup(p, "SIGINT");
      });
    }
  }
});
