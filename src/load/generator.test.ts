import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";
import { tempDir } from "../lib/temp-dirs.js";
import { defaultBucketTable } from "../topology/placement.js";
import { auditLedger, writeKey } from "./audit.js";
import { runLoad, userContent } from "./generator.js";
import { LedgerWriter, readLedger } from "./ledger.js";
import { cellOf, chooseTenants } from "./tenants.js";
import { startFakeDirectory } from "./testing.js";

const table = defaultBucketTable(1024, 4);
const tenants = chooseTenants({ count: 12, table });
const plan = {
  rps: 200,
  durationMs: 1_000,
  writeRatio: 0.5,
  tenants,
  timeoutMs: 2_000,
  runId: "t1",
  service: "directory",
  seed: 3,
};

test("load writes a ledger of every acknowledged write, and the audit finds each one on its cell's primary", async () => {
  const fake = await startFakeDirectory({ regions: ["us-east", "eu-west"], cellOf: (t) => cellOf(t, table) });
  const file = join(tempDir("ringfence-load-"), "ledger.jsonl");
  try {
    const ledger = await LedgerWriter.open(file);
    const summary = await runLoad({ ...plan, routers: fake.routers }, { ledger });
    await ledger.close();

    assert.equal(summary.scheduled, 200);
    assert.equal(summary.started, 200);
    assert.equal(summary.dropped, 0);
    assert.equal(summary.stats.total.requests, 200);
    assert.equal(summary.stats.total.errors, 0);
    assert.equal(summary.writes.attempted + summary.reads.attempted, 200);
    assert.ok(
      summary.writes.attempted > 60 && summary.writes.attempted < 140,
      String(summary.writes.attempted),
    );
    assert.equal(summary.writes.acknowledged, summary.writes.attempted);
    assert.equal(summary.writes.unknownOutcome, 0);
    assert.equal(summary.reads.stale, 0);
    // Round robin over the routers, every cell loaded.
    assert.equal(fake.answered.get("us-east"), 100);
    assert.equal(fake.answered.get("eu-west"), 100);
    assert.deepEqual(Object.keys(summary.stats.byCell).sort(), ["cell-0", "cell-1", "cell-2", "cell-3"]);
    assert.deepEqual(Object.keys(summary.stats.byRegion).sort(), ["eu-west", "us-east"]);
    // Latency was measured (its size is the benches' business): percentiles in order.
    const latency = summary.stats.total.latencyMs;
    assert.ok(latency, "latency recorded");
    assert.ok(latency.p50 >= 0 && latency.p99 >= latency.p50, JSON.stringify(latency));

    const read = await readLedger(file);
    assert.equal(read.entries.length, summary.writes.acknowledged);
    assert.equal(new Set(read.entries.map((e) => e.id)).size, read.entries.length, "ids are unique");
    for (const e of read.entries) {
      assert.match(e.id, /^w-t1-\d+$/);
      assert.deepEqual({ name: e.name, email: e.email }, userContent(e.id));
      assert.equal(e.cell, cellOf(e.tenant, table));
      assert.equal(e.lsn, fake.users.get(writeKey(e.tenant, e.id))?.lsn);
      assert.match(e.servedBy ?? "", new RegExp(`^directory/${e.cell}/(us-east|eu-west)/0$`));
      assert.ok(["us-east", "eu-west"].includes(e.router));
    }

    const report = await auditLedger({ entries: read.entries, routers: fake.routers, primary: fake.primary });
    assert.equal(report.passed, true);
    assert.equal(report.checked, read.entries.length);
    assert.equal(report.ok, read.entries.length);
    assert.deepEqual(report.findings, []);
    assert.equal(report.byCell.length, 4);
  } finally {
    await fake.close();
  }
});

test("writes that time out are not in the ledger: they are counted as unknown outcome", async () => {
  const fake = await startFakeDirectory({
    regions: ["us-east"],
    cellOf: (t) => cellOf(t, table),
    delayMs: 300,
  });
  const appended: string[] = [];
  try {
    const summary = await runLoad(
      { ...plan, rps: 50, durationMs: 200, writeRatio: 1, timeoutMs: 100, routers: fake.routers },
      { ledger: { append: (e) => appended.push(e.id) } },
    );
    assert.equal(summary.writes.attempted, 10);
    assert.equal(summary.writes.acknowledged, 0);
    assert.equal(summary.writes.unknownOutcome, 10);
    assert.deepEqual(appended, []);
    assert.deepEqual(summary.stats.total.errorsByClass, { timeout: 10 });
    // Latency of a timed-out request is its deadline (plus scheduling), never less.
    assert.ok((summary.stats.total.latencyMs?.p50 ?? 0) >= 100);
  } finally {
    await fake.close();
  }
});

test("a refused connection fails writes without an unknown outcome; the cap drops arrivals as client-overload", async () => {
  const fake = await startFakeDirectory({ regions: ["us-east"], cellOf: (t) => cellOf(t, table) });
  const router = fake.routers[0];
  await fake.close();
  assert.ok(router);
  const refused = await runLoad(
    { ...plan, rps: 100, durationMs: 100, writeRatio: 1, routers: [router] },
    { ledger: { append: () => assert.fail("nothing is acknowledged") } },
  );
  assert.equal(refused.writes.failed, 10);
  assert.equal(refused.writes.unknownOutcome, 0);
  assert.deepEqual(refused.stats.total.errorsByClass, { connection: 10 });

  const slow = await startFakeDirectory({
    regions: ["us-east"],
    cellOf: (t) => cellOf(t, table),
    delayMs: 500,
  });
  try {
    const capped = await runLoad(
      { ...plan, rps: 100, durationMs: 200, writeRatio: 0, maxInFlight: 4, routers: slow.routers },
      { ledger: { append: () => {} } },
    );
    assert.equal(capped.scheduled, 20);
    assert.equal(capped.started, 4);
    assert.equal(capped.dropped, 16);
    assert.equal(capped.stats.total.requests, 20, "dropped arrivals are counted");
    assert.deepEqual(capped.stats.total.errorsByClass, { "client-overload": 16 });
  } finally {
    await slow.close();
  }
});
