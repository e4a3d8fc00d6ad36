import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { hedgeDelayMs, LatencyTracker, shouldHedge } from "./latency.js";

test("p95 is undefined until 20 samples, then the nearest-rank 95th percentile", () => {
  const t = new LatencyTracker();
  assert.deepEqual([t.windowSize, t.minSamples, t.refreshEvery], [1000, 20, 50]);
  for (let ms = 1; ms <= 19; ms++) t.record(ms);
  assert.equal(t.p95(), undefined);
  t.record(20);
  assert.equal(t.p95(), 19);
  for (let ms = 21; ms <= 100; ms++) t.record(ms);
  assert.equal(t.p95(), 95);
  assert.equal(t.quantile(0), 1);
  assert.equal(t.quantile(1), 100);
  assert.equal(t.quantile(1.5), undefined);
  assert.equal(t.quantile(Number.NaN), undefined);
});

test("the window slides: old latencies leave it", () => {
  const t = new LatencyTracker({ windowSize: 100, refreshEvery: 1 });
  for (let i = 0; i < 100; i++) t.record(500);
  assert.equal(t.p95(), 500);
  for (let i = 0; i < 100; i++) t.record(10);
  assert.equal(t.count, 100);
  assert.equal(t.p95(), 10, "all slow samples have slid out");
});

test("answers are refreshed after refreshEvery samples, not on every call", () => {
  const t = new LatencyTracker({ windowSize: 1000, refreshEvery: 50 });
  for (let i = 0; i < 1000; i++) t.record(10);
  assert.equal(t.quantile(0.99), 10);
  for (let i = 0; i < 49; i++) t.record(1000);
  assert.equal(t.quantile(0.99), 10, "49 new samples: the sorted copy is reused");
  t.record(1000);
  assert.equal(t.quantile(0.99), 1000, "50 new samples (5% of the window): refreshed");
});

test("junk latencies are ignored and reset forgets everything", () => {
  const t = new LatencyTracker({ minSamples: 1 });
  for (const bad of [-1, Number.NaN, Number.POSITIVE_INFINITY]) t.record(bad);
  assert.equal(t.count, 0);
  t.record(0);
  assert.equal(t.p95(), 0);
  t.reset();
  assert.equal(t.p95(), undefined);
  assert.throws(() => new LatencyTracker({ minSamples: 2000 }), /LatencyTracker\.minSamples/);
});

test("property: p95 with refreshEvery 1 equals the exact nearest-rank p95 of the last samples", () => {
  fc.assert(
    fc.property(
      fc.array(fc.double({ min: 0, max: 10_000, noNaN: true }), { maxLength: 300 }),
      fc.integer({ min: 1, max: 120 }),
      (samples, windowSize) => {
        const minSamples = Math.min(20, windowSize);
        const t = new LatencyTracker({ windowSize, minSamples, refreshEvery: 1 });
        for (const s of samples) t.record(s);
        const window = samples.slice(-windowSize).sort((a, b) => a - b);
        const expected = window.length < minSamples ? undefined : window[Math.ceil(0.95 * window.length) - 1];
        assert.equal(t.p95(), expected);
      },
    ),
    { numRuns: 200 },
  );
});

test("hedging: only GET and HEAD on routes that opt in, after the p95", () => {
  const t = new LatencyTracker();
  for (let i = 1; i <= 100; i++) t.record(i);
  const on = { hedge: true };
  assert.ok(shouldHedge("GET", on) && shouldHedge("HEAD", on));
  for (const m of ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "get"])
    assert.equal(shouldHedge(m, on), false, m);
  assert.equal(shouldHedge("GET", {}), false);
  assert.equal(shouldHedge("GET", { hedge: false }), false);
  assert.equal(hedgeDelayMs("GET", on, t), 95);
  assert.equal(hedgeDelayMs("POST", on, t), undefined);
  assert.equal(hedgeDelayMs("GET", on, new LatencyTracker()), undefined, "too few samples");
});
