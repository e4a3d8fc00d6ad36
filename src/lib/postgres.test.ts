import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import {
  baseSettings,
  findPgBinaries,
  parseRewindOutput,
  primaryConninfo,
  queryOnce,
  rewind,
  signalGroup,
  synchronousStandbyNames,
  writeSettings,
  writeStandbySignal,
} from "./postgres.js";
import { startTestCluster, type TestCluster, type TestInstance } from "./postgres-testing.js";

test("server binaries are found, and their absence is reported with the fix", () => {
  const bin = findPgBinaries();
  assert.ok(bin.majorVersion >= 13);
  assert.equal(
    findPgBinaries({ RINGFENCE_PG_BIN: bin.bindir }, { pgConfig: "/nonexistent" }).bindir,
    bin.bindir,
  );
  assert.throws(
    () =>
      findPgBinaries(
        { RINGFENCE_PG_BIN: "/nonexistent" },
        { pgConfig: "/nonexistent", debianRoot: "/nonexistent", npmBindir: null },
      ),
    (err: Error & { code?: string }) =>
      err.code === "RINGFENCE_PG_NOT_FOUND" &&
      /apt-get install postgresql/.test(err.message) &&
      /RINGFENCE_PG_BIN/.test(err.message),
  );
});

test("synchronous_standby_names names the quorum", () => {
  assert.equal(synchronousStandbyNames(1, ["a", "b"]), 'ANY 1 ("a", "b")');
  assert.equal(synchronousStandbyNames(3, ["a", "b"]), 'ANY 2 ("a", "b")');
  assert.equal(synchronousStandbyNames(0, ["a"]), "");
});

let cluster: TestCluster;
before(async () => {
  cluster = await startTestCluster({ standbys: 2, syncQuorum: 1 });
});
after(async () => {
  await cluster?.stop();
});

test("standbys created with pg_basebackup -R stream from the primary under their application names", async () => {
  const { primary, standbys } = cluster;
  let rows: { application_name: string; sync_state: string }[] = [];
  const deadline = Date.now() + 15_000;
  do {
    rows = await queryOnce<{ application_name: string; sync_state: string }>(
      primary.host,
      primary.port,
      "SELECT application_name, sync_state FROM pg_stat_replication WHERE sync_state = 'quorum' ORDER BY application_name",
    );
    if (rows.length < 2) await new Promise((r) => setTimeout(r, 100));
  } while (rows.length < 2 && Date.now() < deadline);
  assert.deepEqual(
    rows.map((r) => [r.application_name, r.sync_state]),
    [
      ["standby0", "quorum"],
      ["standby1", "quorum"],
    ],
  );
  await queryOnce(primary.host, primary.port, "CREATE TABLE t (v int); INSERT INTO t VALUES (42)");
  for (const s of standbys) {
    const deadline = Date.now() + 10_000;
    let seen: { v: number }[] = [];
    while (Date.now() < deadline && seen.length === 0) {
      seen = await queryOnce<{ v: number }>(s.host, s.port, "SELECT v FROM t").catch(() => []);
      if (seen.length === 0) await new Promise((r) => setTimeout(r, 100));
    }
    assert.deepEqual(seen, [{ v: 42 }]);
  }
});

test("a commit waits for a synchronous standby: with every standby paused it does not return", async () => {
  const { primary, standbys } = cluster;
  for (const s of standbys) signalGroup(s.process, "SIGSTOP");
  let committed = false;
  const write = queryOnce(primary.host, primary.port, "INSERT INTO t VALUES (7)").then(() => {
    committed = true;
  });
  try {
    await new Promise((r) => setTimeout(r, 3_000));
    assert.equal(committed, false, "the commit returned with no standby able to flush it");
  } finally {
    if (standbys[0]) signalGroup(standbys[0].process, "SIGCONT");
  }
  await write;
  assert.equal(committed, true);
  if (standbys[1]) signalGroup(standbys[1].process, "SIGCONT");
});

test("pg_rewind's output says whether it rewound and where the servers diverged", () => {
  const out = [
    "pg_rewind: servers diverged at WAL location 0/3019A28 on timeline 1",
    "pg_rewind: rewinding from last common checkpoint at 0/2000060 on timeline 1",
    "pg_rewind: Done!",
  ].join("\n");
  assert.deepEqual(parseRewindOutput(out).divergedAt, { lsn: "0/3019A28", timeline: 1 });
  assert.equal(parseRewindOutput(out).rewound, true);
  const none = parseRewindOutput(
    "pg_rewind: source and target cluster are on the same timeline\npg_rewind: no rewind required\n",
  );
  assert.equal(none.rewound, false);
  assert.equal(none.divergedAt, undefined);
});

async function waitFor<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`timed out waiting for ${what}${last ? ` (${(last as Error).message})` : ""}`);
}

const q = <T extends Record<string, unknown>>(i: TestInstance, sql: string) =>
  queryOnce<T>(i.host, i.port, sql);

/** Waits until `primary` reports `applicationName` streaming. */
const streamingTo = (primary: TestInstance, applicationName: string) =>
  waitFor(`${applicationName} to stream from ${primary.name}`, async () => {
    const rows = await q<{ n: string }>(
      primary,
      `SELECT count(*) AS n FROM pg_stat_replication WHERE state = 'streaming' AND application_name = '${applicationName}'`,
    );
    return rows[0]?.n === "1" ? true : undefined;
  });

test("failover by hand: promote a standby, repoint the other, rewind the old primary after a split brain", async (t) => {
  const c = await startTestCluster({ standbys: 2, syncQuorum: 1 });
  try {
    const { primary: old, standbys } = c;
    const [a, b] = standbys as [TestInstance, TestInstance];
    await q(old, "CREATE TABLE t (v int); INSERT INTO t SELECT generate_series(1, 100)");
    for (const s of [a, b]) {
      await waitFor(`${s.name} to replay`, async () =>
        (await q<{ n: string }>(s, "SELECT count(*) AS n FROM t"))[0]?.n === "100" ? true : undefined,
      );
    }

    // Promote a: a new timeline.
    let started = Date.now();
    const [promoted] = await q<{ ok: boolean }>(
      a,
      "SELECT pg_promote(wait => true, wait_seconds => 30) AS ok",
    );
    const promoteMs = Date.now() - started;
    assert.equal(promoted?.ok, true);
    const [tl] = await q<{ walfile: string }>(a, "SELECT pg_walfile_name(pg_current_wal_lsn()) AS walfile");
    assert.equal(Number.parseInt(tl?.walfile.slice(0, 8) ?? "", 16), 2);

    // Repoint b: primary_conninfo to a, reload; it follows a onto timeline 2.
    started = Date.now();
    writeSettings(
      b.dataDir,
      {
        ...baseSettings(b.host, b.port),
        primary_conninfo: primaryConninfo({ host: a.host, port: a.port, applicationName: "standby1" }),
      },
      c.runAs,
    );
    await q(b, "SELECT pg_reload_conf()");
    await streamingTo(a, "standby1");
    const repointMs = Date.now() - started;
    await q(a, "INSERT INTO t SELECT generate_series(101, 110)");

    // Split brain: the old primary, still running, takes writes only its own timeline will have.
    await q(old, "SET synchronous_commit = local; INSERT INTO t SELECT generate_series(1000, 1009)");
    assert.equal((await q<{ n: string }>(old, "SELECT count(*) AS n FROM t"))[0]?.n, "110");

    // Rewind the old primary from a and start it as a standby of a.
    await c.stopInstance(old);
    started = Date.now();
    const result = await rewind(c.bin, old.dataDir, c.runAs, { host: a.host, port: a.port });
    const rewindMs = Date.now() - started;
    assert.equal(result.rewound, true, result.output);
    assert.equal(result.divergedAt?.timeline, 1, result.output);
    assert.match(result.divergedAt?.lsn ?? "", /^[0-9A-F]+\/[0-9A-F]+$/);
    writeStandbySignal(old.dataDir, c.runAs);
    const rejoined = await c.startInstance("old-primary", old.dataDir, old.port, {
      primary_conninfo: primaryConninfo({ host: a.host, port: a.port, applicationName: "old_primary" }),
    });
    await streamingTo(a, "old_primary");
    await q(a, "INSERT INTO t VALUES (111)");
    const rows = await waitFor("the rewound instance to replay", async () => {
      const r = await q<{ n: string; lost: string; tli: number | null }>(
        rejoined,
        "SELECT count(*) AS n, count(*) FILTER (WHERE v >= 1000) AS lost, (SELECT received_tli FROM pg_stat_wal_receiver) AS tli FROM t",
      );
      return r[0]?.n === "111" ? r[0] : undefined;
    });
    assert.equal(rows.lost, "0", "rows written only on the old timeline survived the rewind");
    assert.equal(rows.tli, 2);
    assert.equal(
      (await q<{ n: string }>(rejoined, "SELECT count(*) AS n FROM t WHERE v <= 110"))[0]?.n,
      "110",
    );
    t.diagnostic(
      `promotion ${promoteMs} ms, repoint ${repointMs} ms, rewind ${rewindMs} ms; diverged at ${result.divergedAt?.lsn} on timeline ${result.divergedAt?.timeline}`,
    );
  } finally {
    await c.stop();
  }
});
