/**
 * Failover in a real world: PostgreSQL cells, agents, routers and the WAN emulator, with writes
 * going on. Every acknowledged write is kept in a ledger and looked for afterwards.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { after, before, test } from "node:test";
import { RINGFENCE_BIN } from "../cli/world.js";
import { queryOnce } from "../lib/postgres.js";
import { signalTree } from "../lib/proctree.js";
import { startTestWorld, type TestWorld, waitFor } from "./world-testing.js";

let tw: TestWorld;

before(async () => {
  tw = await startTestWorld();
});

after(async () => await tw?.stop(), { timeout: 90_000 });

interface Ack {
  readonly cell: string;
  readonly id: string;
  readonly sentAtMs: number;
  readonly atMs: number;
}

/** Writes to both cells through the given regions' routers until stopped; keeps every acknowledged write. */
function startWriter(regions: readonly string[], prefix: string) {
  const acked: Ack[] = [];
  const failures: { cell: string; atMs: number; status: number | string }[] = [];
  let running = true;
  let n = 0;
  const lane = async (cell: string) => {
    while (running) {
      const region = regions[n % regions.length] as string;
      const id = `${prefix}-${cell}-${n++}`;
      const sentAtMs = Date.now();
      try {
        const r = await tw.put(region, tw.tenantOf(cell), id, AbortSignal.timeout(15_000));
        if (r.status === 200) acked.push({ cell, id, sentAtMs, atMs: Date.now() });
        else failures.push({ cell, atMs: Date.now(), status: r.status });
      } catch (err) {
        failures.push({ cell, atMs: Date.now(), status: (err as Error).name });
      }
      await new Promise((r) => setTimeout(r, 25));
    }
  };
  const lanes = Promise.all([lane("cell-0"), lane("cell-1")]);
  return {
    acked,
    failures,
    stop: async () => {
      running = false;
      await lanes;
    },
  };
}

/** The acknowledged writes of `cell` missing from its database in `region`. */
async function missingIn(cell: string, region: string, acked: readonly Ack[]): Promise<string[]> {
  const db = tw.world.layout.databases.find((d) => d.cell === cell && d.region === region);
  assert.ok(db);
  const ids = acked.filter((a) => a.cell === cell).map((a) => a.id);
  const rows = await queryOnce<{ id: string }>(db.host, db.port, "SELECT id FROM users WHERE id = ANY($1)", [
    ids,
  ]);
  const found = new Set(rows.map((r) => r.id));
  return ids.filter((id) => !found.has(id));
}

async function primaryOf(cell: string): Promise<string> {
  const state = (await tw.cells()).find((c) => c.cell === cell);
  assert.ok(state);
  return state.primary;
}

async function phaseOf(cell: string): Promise<{ phase: string; primary: string; fenced: boolean }> {
  const doc = await tw.controller<{
    cells: { cell: { cell: string; primary: string; fenced: boolean }; phase: string }[];
  }>("/v1/failover");
  const c = doc.cells.find((x) => x.cell.cell === cell);
  assert.ok(c);
  return { phase: c.phase, primary: c.cell.primary, fenced: c.cell.fenced };
}

test("a partition that isolates only the controller fails nothing over", async () => {
  const before = await tw.cells();
  const pid = tw.world.pid("controller");
  assert.ok(pid);
  // The controller hears nothing for 8 s (longer than any detection window), then everything at once.
  signalTree(pid, "SIGSTOP");
  try {
    await new Promise((r) => setTimeout(r, 8_000));
  } finally {
    signalTree(pid, "SIGCONT");
  }
  await new Promise((r) => setTimeout(r, 4_000));
  const afterwards = await tw.cells();
  assert.deepEqual(
    afterwards.map((c) => [c.cell, c.primary, c.epoch, c.fenced]),
    before.map((c) => [c.cell, c.primary, c.epoch, c.fenced]),
  );
});

test("SIGKILL of the primary's whole region under writes: failover on its own, no acknowledged write lost, the old primary rejoins", async (t) => {
  const cell = "cell-0";
  const lost = await primaryOf(cell);
  const survivors = ["r1", "r2", "r3"].filter((r) => r !== lost);
  const writer = startWriter(survivors, "kill");
  await new Promise((r) => setTimeout(r, 2_000));
  const killedAt = Date.now();
  await tw.world.killRegion(lost);
  let completed = false;
  try {
    await waitFor(
      async () => {
        const p = await phaseOf(cell);
        return p.phase === "serving" && p.primary !== lost && !p.fenced;
      },
      60_000,
      `${cell} to fail over away from ${lost}`,
    );
    completed = true;
    const failedOverAt = Date.now();
    // Writes to the cell are accepted again.
    await waitFor(
      () => writer.acked.some((a) => a.cell === cell && a.atMs > failedOverAt),
      20_000,
      "writes to resume",
    );
  } finally {
    await new Promise((r) => setTimeout(r, completed ? 2_000 : 0));
    await writer.stop();
  }
  // Sent after the kill: a write in flight at the kill says nothing about the new primary.
  const firstAfter = writer.acked.find((a) => a.cell === cell && a.sentAtMs > killedAt);
  const lastBefore = [...writer.acked].reverse().find((a) => a.cell === cell && a.atMs <= killedAt);
  assert.ok(firstAfter && lastBefore);
  t.diagnostic(
    `writes to ${cell} accepted again ${firstAfter.atMs - killedAt} ms after its primary's region was killed`,
  );
  t.diagnostic(
    `${writer.acked.length} writes acknowledged, ${writer.failures.filter((f) => f.cell === cell).length} failed for ${cell} during the outage`,
  );
  const history = await tw.controller<{
    history: {
      cell: string;
      kind: string;
      record: { steps: Record<string, number>; decision: { proof?: string } };
    }[];
  }>("/v1/failover");
  const record = history.history.find((h) => h.cell === cell);
  assert.ok(record, "the failover is in the history");
  assert.equal(record.kind, "automatic");
  const steps = Object.entries(record.record.steps)
    .map(([k, v]) => `${k} +${v - killedAt} ms`)
    .join(", ");
  t.diagnostic(`failover steps after the kill: ${steps}; ${record.record.decision.proof}`);
  const now = await primaryOf(cell);
  assert.notEqual(now, lost);
  assert.deepEqual(await missingIn(cell, now, writer.acked), [], "acknowledged writes lost");
  assert.deepEqual(await missingIn("cell-1", await primaryOf("cell-1"), writer.acked), []);

  // The region returns: the old primary is rewound and streams from the new one, with everything.
  tw.world.restoreRegion(lost);
  const newPrimary = tw.world.layout.databases.find((d) => d.cell === cell && d.region === now);
  const old = tw.world.layout.databases.find((d) => d.cell === cell && d.region === lost);
  assert.ok(newPrimary && old);
  await waitFor(
    async () => {
      const rows = await queryOnce<{ application_name: string }>(
        newPrimary.host,
        newPrimary.port,
        "SELECT application_name FROM pg_stat_replication WHERE state = 'streaming'",
      ).catch(() => []);
      return rows.some((r) => r.application_name === old.applicationName);
    },
    120_000,
    `the old primary in ${lost} to stream from ${now}`,
  );
  await waitFor(
    async () => (await missingIn(cell, lost, writer.acked).catch(() => ["?"])).length === 0,
    30_000,
    "the rejoined standby to have every acknowledged write",
  );

  // Failback: once home has been healthy for the window (5 s in this topology), the cell switches
  // back home on its own, under writes, and nothing acknowledged is lost.
  const back = startWriter(["r1", "r2", "r3"], "failback");
  try {
    await waitFor(
      async () => {
        const p = await phaseOf(cell);
        return p.phase === "serving" && p.primary === lost;
      },
      60_000,
      `${cell} to fail back to ${lost}`,
    );
    await new Promise((r) => setTimeout(r, 1_000));
  } finally {
    await back.stop();
  }
  const failback = (
    await tw.controller<{
      history: { cell: string; kind: string; record: { steps: Record<string, number> } }[];
    }>("/v1/failover")
  ).history.find((h) => h.cell === cell && h.kind === "failback");
  assert.ok(failback, "the failback is in the history");
  const paused = (failback.record.steps.unfenced ?? 0) - (failback.record.steps.fenced ?? 0);
  t.diagnostic(`failback to ${lost}: writes paused ${paused} ms`);
  const all = [...writer.acked, ...back.acked];
  assert.deepEqual(
    await missingIn(cell, lost, all),
    [],
    "acknowledged writes lost across failover and failback",
  );
});

test("ringfence switchover: planned, no acknowledged write lost, writes paused at most 1 s", async (t) => {
  const cell = "cell-1";
  const from = await primaryOf(cell);
  const to = ["r1", "r2", "r3"].find((r) => r !== from) as string;
  const writer = startWriter(["r1", "r2", "r3"], "switch");
  let out: { pauseMs: number; kind: string };
  try {
    await new Promise((r) => setTimeout(r, 1_000));
    out = JSON.parse(
      await cli("switchover", cell, "--to", to, "--reason", "test: planned switchover", "--json"),
    ) as { pauseMs: number; kind: string };
    await new Promise((r) => setTimeout(r, 1_000));
  } finally {
    await writer.stop();
  }
  t.diagnostic(`switchover ${from} -> ${to}: writes paused ${out.pauseMs} ms`);
  assert.equal(out.kind, "switchover");
  assert.ok(out.pauseMs <= 1_000, `writes paused ${out.pauseMs} ms`);
  assert.equal(await primaryOf(cell), to);
  assert.deepEqual(await missingIn(cell, to, writer.acked), []);
});

/** Runs the CLI against this world; resolves with its stdout, rejects on a non-zero exit. */
function cli(...args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [RINGFENCE_BIN, ...args, "--state-dir", tw.world.state.root],
      { timeout: 90_000 },
      (err, stdout, stderr) =>
        err ? reject(new Error(`${args.join(" ")}: ${stderr || err.message}`)) : resolve(stdout),
    );
  });
}
