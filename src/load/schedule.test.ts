import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { arrivalOffsets } from "./schedule.js";

test("uniform arrivals are evenly spaced and number exactly ⌈rps × duration⌉", () => {
  const offsets = [...arrivalOffsets({ rps: 50, durationMs: 1_000 })];
  assert.equal(offsets.length, 50);
  assert.equal(offsets[0], 0);
  for (let i = 1; i < offsets.length; i++) {
    assert.ok(Math.abs((offsets[i] as number) - (offsets[i - 1] as number) - 20) < 1e-9);
  }
  assert.equal([...arrivalOffsets({ rps: 3, durationMs: 1_000 })].length, 3);
  assert.equal([...arrivalOffsets({ rps: 3, durationMs: 1_001 })].length, 4);
});

test("every schedule is increasing and inside [0, duration), and uniform counts never drift", () => {
  fc.assert(
    fc.property(
      fc.double({ min: 0.1, max: 5_000, noNaN: true }),
      fc.integer({ min: 0, max: 5_000 }),
      fc.constantFrom("uniform" as const, "poisson" as const),
      fc.integer(),
      (rps, durationMs, process, seed) => {
        const offsets = [...arrivalOffsets({ rps, durationMs, process, seed })];
        for (let i = 0; i < offsets.length; i++) {
          const t = offsets[i] as number;
          assert.ok(t >= 0 && t < durationMs);
          if (i > 0) assert.ok(t >= (offsets[i - 1] as number));
        }
        if (process === "uniform") {
          const expected = Math.ceil((rps * durationMs) / 1000);
          assert.ok(Math.abs(offsets.length - expected) <= 1, `${offsets.length} vs ${expected}`);
        }
      },
    ),
    { numRuns: 200, interruptAfterTimeLimit: 5_000 },
  );
});

test("Poisson arrivals keep the mean rate and are reproducible from the seed", () => {
  const a = [...arrivalOffsets({ rps: 1_000, durationMs: 20_000, process: "poisson", seed: 7 })];
  const b = [...arrivalOffsets({ rps: 1_000, durationMs: 20_000, process: "poisson", seed: 7 })];
  assert.deepEqual(a, b);
  // 20,000 expected; a Poisson count's standard deviation is √20,000 ≈ 141.
  assert.ok(Math.abs(a.length - 20_000) < 700, `got ${a.length}`);
  assert.throws(() => [...arrivalOffsets({ rps: 0, durationMs: 1 })], RangeError);
});
