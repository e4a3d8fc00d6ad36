import assert from "node:assert/strict";
import { test } from "node:test";
import { LoadStats } from "./stats.js";

test("outcomes are grouped per service, cell, router region and operation with latency percentiles", () => {
  const stats = new LoadStats();
  const labels = (cell: string, region: string, operation: string) => ({
    service: "directory",
    cell,
    region,
    operation,
  });
  for (let i = 1; i <= 100; i++)
    stats.record(labels("cell-0", "us-east", "read"), { ok: true, latencyMs: i });
  stats.record(labels("cell-1", "eu-west", "write"), { ok: false, errorClass: "http-503", latencyMs: 5 });
  stats.record(labels("cell-1", "eu-west", "write"), { ok: false, errorClass: "timeout", latencyMs: 5000 });
  stats.record(labels("cell-1", "eu-west", "write"), { ok: false, errorClass: "client-overload" });
  const window = stats.takeWindow();
  assert.equal(window.requests, 103);
  assert.equal(window.errors, 3);
  assert.equal(stats.takeWindow().requests, 0, "a new window starts empty");
  const s = stats.summary();
  assert.equal(s.total.requests, 103);
  assert.equal(s.total.errors, 3);
  assert.deepEqual(s.total.errorsByClass, { "client-overload": 1, "http-503": 1, timeout: 1 });
  assert.equal(s.byService.directory?.requests, 103);
  assert.equal(s.byCell["cell-0"]?.availabilityPct, 100);
  assert.equal(s.byCell["cell-1"]?.availabilityPct, 0);
  assert.equal(s.byRegion["eu-west"]?.errors, 3);
  const read = s.byOperation.read?.latencyMs;
  assert.ok(
    read && Math.abs(read.p50 - 50) < 0.1 && Math.abs(read.p99 - 99) < 0.1 && Math.abs(read.max - 100) < 0.1,
  );
  // The dropped arrival has no latency: two of the three writes were timed.
  assert.ok(Math.abs((s.byOperation.write?.latencyMs?.max ?? 0) - 5000) < 5);
  assert.equal(s.total.availabilityPct, 97.0874);
});
