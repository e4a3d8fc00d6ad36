import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { findPgBinaries, queryOnce, signalGroup, synchronousStandbyNames } from "./postgres.js";
import { startTestCluster, type TestCluster } from "./postgres-testing.js";

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
        { pgConfig: "/nonexistent", debianRoot: "/nonexistent" },
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
