import assert from "node:assert/strict";
import { test } from "node:test";
import { percentile, seconds, writeGap } from "./drill-measures.js";

const acks = (cell: string, times: number[]) => times.map((atMs) => ({ cell, atMs }));

test("the write pause is the longest gap between a cell's acknowledgements that overlaps the event", () => {
  const all = [...acks("cell-0", [100, 160, 220, 1_400, 1_460]), ...acks("cell-1", [500, 900])];
  // Fenced at 200, unfenced at 1 000: the last write before came at 220 (its answer was on its way).
  assert.deepEqual(writeGap(all, "cell-0", 200, 1_000), {
    lastBeforeMs: 220,
    firstAfterMs: 1_400,
    pauseMs: 1_180,
  });
  // Another cell's writes say nothing about this one.
  assert.equal(writeGap(all, "cell-0", 200, 1_000)?.pauseMs, 1_180);
  assert.equal(writeGap(all, "cell-1", 600, 700)?.pauseMs, 400);
});

test("a cell whose writes never resumed has an endless pause; one without writes before has none", () => {
  const gap = writeGap(acks("cell-0", [100, 150]), "cell-0", 200, 300);
  assert.equal(gap?.lastBeforeMs, 150);
  assert.ok(Number.isNaN(gap?.firstAfterMs));
  assert.equal(gap?.pauseMs, Number.POSITIVE_INFINITY);
  assert.equal(writeGap(acks("cell-0", [500]), "cell-0", 200, 300), undefined);
});

test("percentiles by nearest rank, a NaN counting as the worst", () => {
  const values = Array.from({ length: 20 }, (_, i) => (i + 1) * 100);
  assert.equal(percentile(values, 0.5), 1_000);
  assert.equal(percentile(values, 1), 2_000);
  assert.equal(percentile([3, 1, 2], 0), 1);
  assert.equal(percentile([1, Number.NaN, 2], 1), Number.POSITIVE_INFINITY);
  assert.ok(Number.isNaN(percentile([], 0.5)));
  assert.equal(seconds(1_234), "1.23 s");
  assert.equal(seconds(Number.NaN), "NEVER");
  assert.equal(seconds(Number.POSITIVE_INFINITY), "NEVER");
});
