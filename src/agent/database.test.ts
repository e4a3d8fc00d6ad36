/**
 * The database runner's role reconciliation against real PostgreSQL: three instances of one cell
 * (one per region, on 127.0.0.1, reached directly instead of through a WAN), driven by a fake
 * desired state that fails the cell over and back as the controller would.
 */
import assert from "node:assert/strict";
import { chmodSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { freePort } from "../lib/ports.js";
import {
  baseSettings,
  findPgBinaries,
  pgRunAs,
  primaryConninfo,
  queryOnce,
  writeSettings,
} from "../lib/postgres.js";
import type { CellState } from "../world/contracts.js";
import type { DatabaseSlot, Layout } from "../world/layout.js";
import { DatabaseRunner } from "./database.js";

const REGIONS = ["r1", "r2", "r3"] as const;
type Region = (typeof REGIONS)[number];

let dir: string;
let cell: CellState = { cell: "cell-0", primary: "r1", epoch: 1, fenced: false };
const events: { region: Region; kind: string; message: string; data: Record<string, unknown> }[] = [];
const runners = new Map<Region, DatabaseRunner>();
const slots = new Map<Region, DatabaseSlot>();
let urgent = 0;
let layout: Layout;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "ringfence-agent-db-"));
  chmodSync(dir, 0o755); // the postgres user must traverse it
  const databases: DatabaseSlot[] = [];
  for (const region of REGIONS) {
    databases.push({
      id: `cell-0/${region}`,
      cell: "cell-0",
      region,
      zone: `${region}/a`,
      host: "127.0.0.1",
      port: await freePort(),
      applicationName: `cell_0_${region}`,
    });
  }
  const none = { host: "127.0.0.1", port: 0 };
  layout = {
    addressBase: 0,
    controller: none,
    controlDatabase: none,
    wanControl: none,
    // Every region reaches the others directly: wanHost is where the databases listen.
    regions: REGIONS.map((name, index) => ({
      name,
      index,
      subnet: "127.0.0",
      router: none,
      wanHost: "127.0.0.1",
    })),
    zones: REGIONS.map((region) => ({ id: `${region}/a`, region, host: "127.0.0.1" })),
    databases,
    writers: [],
    instances: [],
  };
  for (const slot of databases) slots.set(slot.region as Region, slot);
  for (const region of REGIONS) {
    const urgentReport = () => {
      urgent++;
    };
    runners.set(region, new DatabaseRunner({ ...optionsOf(region), onUrgentReport: urgentReport }));
  }
  for (const r of runners.values()) r.start();
});

after(
  async () => {
    await Promise.all([...runners.values()].map((r) => r.stop()));
    rmSync(dir, { recursive: true, force: true });
  },
  { timeout: 60_000 },
);

const runner = (region: Region) => runners.get(region) as DatabaseRunner;
const slot = (region: Region) => slots.get(region) as DatabaseSlot;
const q = <T extends Record<string, unknown>>(region: Region, sql: string) =>
  queryOnce<T>(slot(region).host, slot(region).port, sql);
const count = async (region: Region, where = "true") =>
  Number((await q<{ n: string }>(region, `SELECT count(*) AS n FROM t WHERE ${where}`))[0]?.n);

/** Reconciles every runner (as the agent's tick does) until `check` holds. */
async function until(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    await Promise.all([...runners.values()].map((r) => r.reconcile()));
    try {
      if (await check()) return;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  const state = [...runners.entries()].map(([k, r]) => `${k}: ${r.report.role} ${r.detail}`).join("; ");
  throw new Error(`timed out waiting for ${what} (${state})${last ? `; ${(last as Error).message}` : ""}`);
}

/** Whether `primary` has every other instance streaming from it. */
async function allStreamingFrom(primary: Region): Promise<boolean> {
  const rows = await q<{ application_name: string }>(
    primary,
    "SELECT application_name FROM pg_stat_replication WHERE state = 'streaming'",
  );
  const names = new Set(rows.map((r) => r.application_name));
  return REGIONS.filter((r) => r !== primary).every((r) => names.has(slot(r).applicationName));
}

const eventOf = (region: Region, kind: string, since: number) =>
  events.slice(since).find((e) => e.region === region && e.kind === kind);

const timings: string[] = [];

test("the home instance starts as primary and the others as its streaming standbys, with positions reported", async () => {
  await until(
    "the cell to run",
    async () => (await allStreamingFrom("r1")) && runner("r1").report.role === "primary",
  );
  const report = runner("r1").report;
  assert.equal(report.timeline, 1);
  assert.match(report.flushLsn ?? "", /^[0-9A-F]+\/[0-9A-F]+$/);
  assert.equal(report.synchronousStandbyNames, 'ANY 1 ("cell_0_r2", "cell_0_r3")');
  await q("r1", "CREATE TABLE t (v int); INSERT INTO t SELECT generate_series(1, 100)");
  await until("the standbys to report the same flushed position", async () => {
    const [row] = await q<{ lsn: string }>("r1", "SELECT pg_current_wal_flush_lsn()::text AS lsn");
    return ["r2", "r3"].every((r) => {
      const s = runner(r as Region).report;
      return s.role === "standby" && s.flushLsn === row?.lsn && s.timeline === 1;
    });
  });
});

test("failover to r2: r2 is promoted, the old primary rewound, a standby past the fork point rewound", async () => {
  // r2 stops receiving (its primary_conninfo leads nowhere), so r3 gets rows r2 never will: r3 is
  // then ahead of r2's fork point and cannot just follow r2.
  writeSettings(
    join(dir, "cell-0-r2"),
    {
      ...baseSettings(slot("r2").host, slot("r2").port),
      primary_conninfo: primaryConninfo({ host: "127.0.0.1", port: 1, applicationName: "cell_0_r2" }),
    },
    pgRunAs(),
  );
  await q("r2", "SELECT pg_reload_conf()");
  const cutOff = async () =>
    (
      await q<{ n: string }>(
        "r1",
        "SELECT count(*) AS n FROM pg_stat_replication WHERE application_name = 'cell_0_r2'",
      )
    )[0]?.n === "0";
  for (let i = 0; i < 100 && !(await cutOff()); i++) await new Promise((r) => setTimeout(r, 50));
  assert.ok(await cutOff(), "r2 still streams");
  await q("r1", "INSERT INTO t SELECT generate_series(101, 110)"); // acknowledged by r3 alone
  await until("r3 to replay the rows r2 lacks", async () => (await count("r3")) === 110);

  const since = events.length;
  const urgentBefore = urgent;
  cell = { ...cell, primary: "r2", epoch: 2, fenced: true };
  await until("r2 to be promoted", () => runner("r2").report.role === "primary");
  assert.ok(urgent > urgentBefore, "no heartbeat asked for after the promotion");
  const promoted = eventOf("r2", "database.promoted", since);
  assert.ok(promoted, "no database.promoted event");
  assert.equal(runner("r2").report.timeline, 2);
  // The probe right after the promotion may read the setting before the backend took in the reload
  // (a known race of one probe); what matters is that r2 reports its own quorum of the others.
  await until(
    "r2 to report the other two as its synchronous standbys",
    () => runner("r2").report.synchronousStandbyNames === 'ANY 1 ("cell_0_r1", "cell_0_r3")',
  );

  await until("r1 and r3 to stream from r2", () => allStreamingFrom("r2"), 90_000);
  assert.ok(eventOf("r1", "database.demoted", since), "no database.demoted event for the old primary");
  const rewoundOld = eventOf("r1", "database.rewound", since);
  assert.ok(rewoundOld, "no database.rewound event for the old primary");
  assert.equal(rewoundOld.data.divergedOnTimeline, 1);
  assert.match(String(rewoundOld.data.divergedAtLsn), /^[0-9A-F]+\/[0-9A-F]+$/);
  const repointed = eventOf("r3", "database.repointed", since);
  assert.equal(repointed?.data.streaming, false, "r3 cannot stream from a primary behind it");
  assert.ok(eventOf("r3", "database.diverged", since), "no database.diverged event for r3");
  const rewoundStandby = eventOf("r3", "database.rewound", since);
  assert.ok(rewoundStandby, "r3 was not rewound");

  // Everything acknowledged before r2 was cut off is everywhere; what only r1 and r3 had is gone.
  await q("r2", "INSERT INTO t VALUES (200)"); // needs r1 or r3: both follow r2 now
  for (const r of REGIONS) {
    await until(`${r} to replay the write on r2`, async () => (await count(r, "v = 200")) === 1);
    assert.equal(await count(r, "v <= 100"), 100, `${r} lost acknowledged rows`);
    assert.equal(await count(r, "v BETWEEN 101 AND 110"), 0, `${r} kept rows of the abandoned timeline`);
  }
  timings.push(
    `promotion ${promoted.data.durationMs} ms`,
    `old primary rewind ${rewoundOld.data.durationMs} ms (diverged at ${rewoundOld.data.divergedAtLsn})`,
    `diverged standby rewind ${rewoundStandby.data.durationMs} ms`,
  );
});

test("failback to r1: r1 is promoted, r2 rejoins as a standby, r3 is repointed and streams at once", async () => {
  const since = events.length;
  cell = { ...cell, primary: "r1", epoch: 3, fenced: true };
  await until("r1 to be promoted", () => runner("r1").report.role === "primary");
  assert.equal(runner("r1").report.timeline, 3);
  await until("r2 and r3 to stream from r1", () => allStreamingFrom("r1"), 90_000);
  const repointed = eventOf("r3", "database.repointed", since);
  assert.equal(repointed?.data.streaming, true, repointed?.message);
  assert.ok(eventOf("r2", "database.demoted", since));
  await q("r1", "INSERT INTO t VALUES (300)");
  for (const r of REGIONS) await until(`${r} to replay`, async () => (await count(r, "v = 300")) === 1);
  const promoted = eventOf("r1", "database.promoted", since);
  const rewound = eventOf("r2", "database.rewound", since);
  timings.push(
    `failback promotion ${promoted?.data.durationMs} ms`,
    `repoint ${repointed?.data.durationMs} ms`,
    `old primary rewind ${rewound?.data.durationMs} ms (${rewound?.data.rewound ? "rewound" : "no rewind needed"})`,
  );
});

test("the commit mode: async clears synchronous_standby_names, quorum sets it again", async () => {
  const since = events.length;
  cell = { ...cell, fenced: false, commit: "async" };
  await until("async commits", () => runner("r1").report.synchronousStandbyNames === null);
  assert.equal(eventOf("r1", "database.commit-mode", since)?.data.to, "");
  cell = { ...cell, commit: "quorum" };
  await until(
    "quorum commits",
    () => runner("r1").report.synchronousStandbyNames === 'ANY 1 ("cell_0_r2", "cell_0_r3")',
  );
});

test("a data directory found to have run as a primary is rewound at start; when that fails it is set aside and re-cloned", async (t) => {
  const since = events.length;
  await runner("r3").stop();
  // As if r3 came back from an outage having been a primary (no standby.signal), with data that
  // pg_rewind cannot read (no control file).
  const r3Dir = join(dir, "cell-0-r3");
  rmSync(join(r3Dir, "standby.signal"));
  rmSync(join(r3Dir, "global", "pg_control"));
  // A new runner on the same data, as after an agent restart.
  const fresh = new DatabaseRunner(optionsOf("r3"));
  runners.set("r3", fresh);
  fresh.start();
  await until(
    "r3 to be re-cloned and stream again",
    async () => eventOf("r3", "database.recloned", since) !== undefined && (await allStreamingFrom("r1")),
    90_000,
  );
  const recloned = eventOf("r3", "database.recloned", since);
  assert.ok(recloned, "no database.recloned event");
  assert.ok(
    readdirSync(dir).some((f) => f.startsWith("cell-0-r3.failed-")),
    "the data directory was not set aside",
  );
  assert.equal(await count("r3", "v = 300"), 1);
  timings.push(`re-clone ${recloned.data.durationMs} ms`);
  t.diagnostic(timings.join(", "));
});

test("data a rewind was interrupted in is never started: it is re-cloned, and only the latest copy set aside is kept", async () => {
  const since = events.length;
  await runner("r3").stop();
  const r3Dir = join(dir, "cell-0-r3");
  writeFileSync(`${r3Dir}.incomplete`, "rewind\n"); // as if the agent died during pg_rewind
  const fresh = new DatabaseRunner(optionsOf("r3"));
  runners.set("r3", fresh);
  fresh.start();
  await until(
    "r3 to be re-cloned and stream again",
    async () => eventOf("r3", "database.recloned", since) !== undefined && (await allStreamingFrom("r1")),
    90_000,
  );
  assert.match(String(eventOf("r3", "database.recloned", since)?.data.reason), /interrupted/);
  assert.equal(existsSync(`${r3Dir}.incomplete`), false);
  assert.equal(readdirSync(dir).filter((f) => f.startsWith("cell-0-r3.failed-")).length, 1);
  assert.equal(await count("r3", "v = 300"), 1);
});

test("switchover with a relay: r3 streams from the target r2 before it is promoted, then follows it onto its timeline on the same stream", async () => {
  const since = events.length;
  const r3Streams = async (from: Region) =>
    (
      await q<{ application_name: string }>(
        from,
        "SELECT application_name FROM pg_stat_replication WHERE state = 'streaming'",
      )
    ).some((r) => r.application_name === slot("r3").applicationName);
  cell = { ...cell, fenced: true, switchingTo: "r2" };
  await until("r3 to stream from r2", () => r3Streams("r2"));
  // r1 commits once r2, its only direct standby now, has the commit; r3 gets it through r2.
  await q("r1", "INSERT INTO t VALUES (400)");
  await until("r3 to replay r1's write through r2", async () => (await count("r3", "v = 400")) === 1);
  const relayed = events.filter((e, i) => i >= since && e.region === "r3" && e.kind === "database.repointed");
  assert.equal(relayed.length, 1, "r3 was repointed once, to r2");
  assert.equal(relayed[0]?.data.to, slot("r2").id);
  cell = { cell: "cell-0", primary: "r2", epoch: cell.epoch + 1, fenced: true };
  await until("r2 to be promoted", () => runner("r2").report.role === "primary");
  const timeline = runner("r2").report.timeline;
  await until("r3 to follow r2 onto its timeline", () => runner("r3").report.timeline === timeline);
  assert.equal(
    events.filter((e, i) => i >= since && e.region === "r3" && e.kind === "database.repointed").length,
    1,
    "r3 was not repointed again after the promotion",
  );
  await q("r2", "INSERT INTO t VALUES (500)"); // needs r1 or r3
  await until("r1 to rejoin and every instance to stream from r2", () => allStreamingFrom("r2"), 90_000);
  for (const r of REGIONS) await until(`${r} to replay`, async () => (await count(r, "v = 500")) === 1);
});

function optionsOf(region: Region): ConstructorParameters<typeof DatabaseRunner>[0] {
  return {
    slot: slot(region),
    layout,
    syncQuorum: 1,
    bin: findPgBinaries(),
    runAs: pgRunAs(),
    dataDir: join(dir, `cell-0-${region}`),
    logFile: join(dir, `${region}.log`),
    cell: () => cell,
    onEvent: () => {},
    onDatabaseEvent: (kind, message, data) => events.push({ region, kind, message, data }),
  };
}
