import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { FailureWindow } from "./failure-window.js";

test("counts within the interval and forgets after it", () => {
  const w = new FailureWindow(10_000);
  w.record(0, true);
  w.record(5_000, false);
  assert.deepEqual([w.total, w.failed], [2, 1]);
  w.advance(10_000);
  assert.deepEqual([w.total, w.failed], [1, 0], "the first bucket slid out");
  w.advance(1_000_000);
  assert.deepEqual([w.total, w.failed], [0, 0]);
  w.record(999_000, true);
  assert.deepEqual([w.total, w.failed], [1, 1], "a clock stepping back counts into the newest bucket");
});

test("property: an outcome counts while younger than 90% of the interval and never once older than it", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 10, max: 100_000 }),
      fc.array(fc.record({ gap: fc.integer({ min: 0, max: 30_000 }), failed: fc.boolean() }), {
        maxLength: 200,
      }),
      (intervalMs, steps) => {
        const w = new FailureWindow(intervalMs);
        const seen: { at: number; failed: boolean }[] = [];
        let now = 0;
        for (const { gap, failed } of steps) {
          now += gap;
          w.record(now, failed);
          seen.push({ at: now, failed });
          const age = (e: { at: number }) => now - e.at;
          const surely = seen.filter((e) => age(e) < intervalMs * 0.9 - 1e-6);
          const maybe = seen.filter((e) => age(e) < intervalMs);
          assert.ok(w.total >= surely.length && w.total <= maybe.length, `total ${w.total}`);
          assert.ok(w.failed >= surely.filter((e) => e.failed).length);
          assert.ok(w.failed <= maybe.filter((e) => e.failed).length);
        }
      },
    ),
    { numRuns: 200 },
  );
});
