import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import {
  DELIVERY_SLACK_MS,
  detectionSettings,
  HEARTBEAT_INTERVAL_MS,
  MAX_PROBE_INTERVAL_MS,
  MAX_PROBE_TIMEOUT_MS,
  MIN_DETECTION_MS,
  MIN_PROBE_TIMEOUT_MS,
} from "./settings.js";

test("the default detection of 3 s gives the runtime's historical settings", () => {
  assert.deepEqual(detectionSettings(3_000), {
    observerRegions: 2,
    failuresToDeclare: 2,
    failuresWhenAgentDown: 1,
    freshMs: 3_000,
    probeIntervalMs: 500,
    probeTimeoutMs: 800,
    declaredWithinMs: 3_000,
  });
});

test("a longer detection asks for more failed probes in a row, at the same probe rate", () => {
  const ten = detectionSettings(10_000);
  assert.equal(ten.failuresToDeclare, 7);
  assert.equal(ten.failuresWhenAgentDown, 3);
  assert.equal(ten.probeIntervalMs, 500);
  assert.equal(ten.probeTimeoutMs, 800);
  assert.equal(ten.freshMs, 3_000);
  assert.equal(ten.declaredWithinMs, 7 * 1_300 + 400);
});

test("a detection below 3 s shrinks the probe period instead, keeping 2 failures", () => {
  const s = detectionSettings(1_500);
  assert.equal(s.failuresToDeclare, 2);
  assert.equal(s.probeIntervalMs + s.probeTimeoutMs, 550);
  assert.ok(s.declaredWithinMs <= 1_500);
});

test("below the minimum detection it throws a RangeError naming the field", () => {
  assert.equal(MIN_DETECTION_MS, 1_050);
  assert.doesNotThrow(() => detectionSettings(MIN_DETECTION_MS));
  assert.equal(detectionSettings(MIN_DETECTION_MS).probeTimeoutMs, MIN_PROBE_TIMEOUT_MS);
  assert.throws(
    () => detectionSettings(MIN_DETECTION_MS - 1),
    /failover\.detection must be at least 1050 ms/,
  );
  assert.throws(() => detectionSettings(Number.NaN), RangeError);
});

test("property: the verdict comes within the detection, and a longer detection never declares sooner", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: MIN_DETECTION_MS, max: 3_600_000 }),
      fc.integer({ min: 0, max: 600_000 }),
      (detectionMs, more) => {
        const s = detectionSettings(detectionMs);
        const period = s.probeIntervalMs + s.probeTimeoutMs;
        // The bound: N failed probes, each at most one period, then the delivery.
        assert.equal(s.declaredWithinMs, s.failuresToDeclare * period + DELIVERY_SLACK_MS);
        assert.ok(s.declaredWithinMs <= detectionMs);
        // It uses the detection well: one more failure (or a longer period) would not fit.
        assert.ok(
          period === MAX_PROBE_INTERVAL_MS + MAX_PROBE_TIMEOUT_MS
            ? (s.failuresToDeclare + 1) * period + DELIVERY_SLACK_MS > detectionMs
            : s.failuresToDeclare === 2,
        );
        assert.ok(s.failuresToDeclare >= 2);
        assert.ok(s.failuresWhenAgentDown >= 1 && s.failuresWhenAgentDown <= s.failuresToDeclare);
        assert.ok(s.probeIntervalMs <= MAX_PROBE_INTERVAL_MS && s.probeTimeoutMs <= MAX_PROBE_TIMEOUT_MS);
        assert.ok(s.probeTimeoutMs >= MIN_PROBE_TIMEOUT_MS);
        assert.ok(Number.isInteger(s.probeIntervalMs) && Number.isInteger(s.probeTimeoutMs));
        // A healthy observer's latest report stays fresh across a heartbeat and a probe period.
        assert.ok(s.freshMs > HEARTBEAT_INTERVAL_MS + period);
        const longer = detectionSettings(detectionMs + more);
        assert.ok(
          longer.failuresToDeclare * (longer.probeIntervalMs + longer.probeTimeoutMs) >=
            s.failuresToDeclare * period,
        );
      },
    ),
    { numRuns: 2_000 },
  );
});
