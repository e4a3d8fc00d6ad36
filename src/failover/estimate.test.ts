import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { estimateLoss } from "./estimate.js";

test("the survivor reached the sample 2 s before the failure: up to 2 s of writes, the bytes past it", () => {
  const history = [
    { atMs: 1_000, lsn: 100n },
    { atMs: 2_000, lsn: 200n },
    { atMs: 3_000, lsn: 300n },
  ];
  const e = estimateLoss(history, 250n, 4_000);
  assert.equal(e.bytes, 50);
  assert.equal(e.seconds, 2);
  assert.match(e.basis, /2\.0 s before the failure/);
});

test("a survivor ahead of the last sample risks only the writes after it: 0 bytes sampled, a non-zero window", () => {
  const e = estimateLoss([{ atMs: 1_000, lsn: 100n }], 150n, 1_800);
  assert.equal(e.bytes, 0);
  assert.equal(e.seconds, 0.8);
});

test("no history: nothing to estimate from, and it says so", () => {
  const e = estimateLoss([], 0n, 1_000);
  assert.equal(e.seconds, 0);
  assert.match(e.basis, /cannot be estimated/);
});

test("property: figures are never negative, the window never exceeds the history, and a survivor further ahead never risks more", () => {
  fc.assert(
    fc.property(
      fc.array(fc.nat({ max: 1_000 }), { minLength: 1, maxLength: 30 }),
      fc.nat({ max: 40_000 }),
      fc.nat({ max: 40_000 }),
      (steps, a, b) => {
        let lsn = 0n;
        const history = steps.map((step, i) => {
          lsn += BigInt(step);
          return { atMs: i * 1_000, lsn };
        });
        const failedAt = history.length * 1_000;
        const [low, high] = a <= b ? [a, b] : [b, a];
        const eLow = estimateLoss(history, BigInt(low), failedAt);
        const eHigh = estimateLoss(history, BigInt(high), failedAt);
        assert.ok(eLow.bytes >= 0 && eLow.seconds >= 0);
        assert.ok(eLow.seconds <= failedAt / 1_000);
        assert.ok(eHigh.bytes <= eLow.bytes && eHigh.seconds <= eLow.seconds);
      },
    ),
    { numRuns: 1_000 },
  );
});
