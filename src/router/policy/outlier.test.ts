import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import {
  type EjectionEvent,
  ejectionCap,
  OutlierDetector,
  type OutlierOptions,
  type ReturnEvent,
} from "./outlier.js";

function fakeClock(start = 1_000_000): { now: () => number; advance: (ms: number) => void } {
  let t = start;
  return {
    now: () => t,
    advance: (ms) => {
      t += ms;
    },
  };
}

function detector(options: OutlierOptions = {}) {
  const clock = fakeClock();
  const d = new OutlierDetector({ now: clock.now, ...options });
  const ejections: EjectionEvent[] = [];
  const returns: ReturnEvent[] = [];
  d.onEject((e) => ejections.push(e));
  d.onReturn((e) => returns.push(e));
  return { d, clock, ejections, returns };
}

function fail(d: OutlierDetector, id: string, times: number): void {
  for (let i = 0; i < times; i++) d.recordFailure(id);
}

test("defaults follow Envoy", () => {
  const d = new OutlierDetector();
  assert.deepEqual(
    [
      d.consecutiveFailures,
      d.failureRatio,
      d.intervalMs,
      d.minRequests,
      d.baseEjectionMs,
      d.maxEjectionMs,
      d.ejectionDecayMs,
      d.maxEjectionRatio,
    ],
    [5, 0.5, 10_000, 20, 30_000, 300_000, 10_000, 0.5],
  );
  assert.equal(new OutlierDetector({ baseEjectionMs: 400_000 }).maxEjectionMs, 400_000);
  assert.throws(() => new OutlierDetector({ failureRatio: 0 }), /OutlierDetector\.failureRatio/);
  assert.throws(() => new OutlierDetector({ maxEjectionMs: 10, baseEjectionMs: 20 }), /maxEjectionMs/);
  assert.throws(() => new OutlierDetector({ consecutiveFailures: 2.5 }), /consecutiveFailures/);
});

test("five failures in a row eject for 30 s, then the upstream returns by itself", () => {
  const { d, clock, ejections, returns } = detector();
  d.register("a", "p");
  d.register("b", "p");
  fail(d, "a", 4);
  d.recordSuccess("a");
  fail(d, "a", 4);
  assert.equal(d.isEjected("a"), false, "a success breaks the run");
  d.recordFailure("a");
  assert.equal(d.isEjected("a"), true);
  assert.deepEqual(ejections, [
    {
      id: "a",
      pool: "p",
      reason: "consecutive-failures",
      ejections: 1,
      durationMs: 30_000,
      untilMs: clock.now() + 30_000,
    },
  ]);
  assert.deepEqual(d.ejected(), ["a"]);
  clock.advance(29_999);
  assert.equal(d.isEjected("a"), true);
  clock.advance(1);
  assert.equal(d.isEjected("a"), false);
  assert.deepEqual(returns, [{ id: "a", pool: "p", atMs: clock.now() }]);
  assert.deepEqual(d.ejected(), []);
});

test("the failure-ratio rule needs minRequests in the window and forgets old requests", () => {
  const { d, clock } = detector({ consecutiveFailures: 0 });
  d.register("a", "p");
  d.register("b", "q");
  for (let i = 0; i < 9; i++) {
    d.recordSuccess("a");
    d.recordFailure("a");
  }
  assert.equal(d.isEjected("a"), false, "18 requests are too few");
  d.recordSuccess("a");
  d.recordFailure("a");
  assert.equal(d.isEjected("a"), true, "10 of 20 failed");

  // Requests older than the interval slide out of the window.
  for (let i = 0; i < 10; i++) d.recordFailure("b");
  clock.advance(10_000);
  for (let i = 0; i < 10; i++) d.recordSuccess("b");
  assert.equal(d.inspect("b")?.windowRequests, 10);
  assert.equal(d.isEjected("b"), false);
  for (let i = 0; i < 10; i++) d.recordFailure("b");
  assert.equal(d.isEjected("b"), true);
  assert.equal(d.inspect("b")?.windowRequests, 0, "the window restarts at ejection");
});

test("an ejected upstream that keeps getting traffic is not re-ejected and its multiplier stays", () => {
  const { d, clock, ejections } = detector();
  d.register("a", "p");
  fail(d, "a", 5);
  fail(d, "a", 100);
  d.recordSuccess("a");
  assert.equal(ejections.length, 1);
  assert.equal(d.inspect("a")?.ejections, 1);
  assert.equal(d.inspect("a")?.windowRequests, 0, "outcomes while ejected are not counted");
  clock.advance(30_000);
  fail(d, "a", 4);
  assert.equal(d.isEjected("a"), false, "it returned with a clean slate: four failures do not eject");
  d.recordFailure("a");
  assert.equal(ejections.length, 2);
  assert.equal(ejections[1]?.durationMs, 60_000);
});

test("a two-upstream pool can eject one but not both; pools are independent", () => {
  const { d, ejections } = detector();
  for (const [id, pool] of [
    ["a1", "cell-0/us-east"],
    ["a2", "cell-0/us-east"],
    ["b1", "cell-0/eu-west"],
  ] as const) {
    d.register(id, pool);
  }
  fail(d, "a1", 5);
  fail(d, "a2", 50);
  fail(d, "b1", 5);
  assert.deepEqual(d.ejected().sort(), ["a1", "b1"], "a single-upstream pool may eject its only upstream");
  assert.deepEqual(d.ejected("cell-0/us-east"), ["a1"]);
  assert.equal(d.stats().ejectionsRefused, 46, "a2 asked at each failure from its fifth on");
  assert.equal(ejections.length, 2);
});

test("a refused ejection happens at the next failure once the pool has room", () => {
  const { d, clock } = detector();
  d.register("a1", "p");
  d.register("a2", "p");
  fail(d, "a1", 5);
  fail(d, "a2", 5);
  assert.equal(d.isEjected("a2"), false);
  clock.advance(30_000);
  d.recordFailure("a2");
  assert.equal(d.isEjected("a2"), true);
  assert.equal(d.isEjected("a1"), false);
});

test("ejection time is base × ejections, capped; time in rotation forgives one per decay period", () => {
  const { d, clock } = detector({ baseEjectionMs: 30_000, maxEjectionMs: 100_000 });
  const durations: number[] = [];
  d.onEject((e) => durations.push(e.durationMs));
  for (let i = 0; i < 5; i++) {
    fail(d, "a", 5);
    clock.advance(durations.at(-1) ?? 0);
  }
  assert.deepEqual(durations, [30_000, 60_000, 90_000, 100_000, 100_000]);
  assert.equal(d.inspect("a")?.ejections, 5);
  clock.advance(25_000);
  assert.equal(d.inspect("a")?.ejections, 3, "two decay periods (10 s) in rotation forgive two");
  fail(d, "a", 5);
  assert.equal(durations.at(-1), 100_000, "multiplier 4 is still capped");
  clock.advance(100_000 + 1_000_000);
  fail(d, "a", 5);
  assert.equal(durations.at(-1), 30_000, "long health forgives everything");
});

test("listeners are disposable and a throwing listener neither stops others nor corrupts state", () => {
  const clock = fakeClock();
  const d = new OutlierDetector({ now: clock.now });
  const seen: string[] = [];
  const first = d.onEject(() => {
    throw new Error("metrics are down");
  });
  const second = d.onEject((e) => seen.push(e.id));
  assert.throws(() => fail(d, "a", 5), /metrics are down/);
  assert.deepEqual(seen, ["a"]);
  assert.equal(d.isEjected("a"), true);
  first.dispose();
  first.dispose();
  second.dispose();
  d.register("b", "other");
  fail(d, "b", 5);
  assert.equal(d.isEjected("b"), true);
  assert.deepEqual(seen, ["a"]);
});

test("unregister and re-register keep pool accounting right", () => {
  const { d } = detector();
  d.register("a", "p");
  d.register("b", "p");
  fail(d, "a", 5);
  d.unregister("a");
  fail(d, "b", 5);
  assert.deepEqual(d.ejected(), ["b"], "a's ejection left the pool with it");
  d.register("b", "q");
  d.register("c", "p");
  d.register("d", "p");
  fail(d, "c", 5);
  assert.deepEqual(d.ejected().sort(), ["b", "c"]);
  assert.equal(d.inspect("b")?.pool, "q");
  assert.equal(d.inspect("zz"), undefined);
  d.recordFailure("new");
  assert.equal(d.inspect("new")?.pool, "default");
});

test("the ejection cap: max(1, ⌊ratio × size⌋), a product a hair under a whole number counting as it", () => {
  assert.equal(ejectionCap(0.5, 3), 1);
  assert.equal(ejectionCap(0.5, 4), 2);
  assert.equal(ejectionCap(0, 4), 1, "one upstream may always be ejected");
  assert.equal(ejectionCap(1, 4), 4);
  assert.equal(0.29 * 100 < 29, true, "floating point makes 0.29 × 100 a hair under 29");
  assert.equal(ejectionCap(0.29, 100), 29);
  assert.equal(ejectionCap(0.9999999995, 2), 2, "within 1e-9 of 2");
  assert.equal(ejectionCap(0.999999, 2), 1);
});

type Op =
  | { kind: "fail" | "ok"; upstream: number }
  | { kind: "tick"; ms: number }
  | { kind: "check"; upstream: number };

const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ kind: fc.constant("fail" as const), upstream: fc.nat(11) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("ok" as const), upstream: fc.nat(11) }) },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant("tick" as const), ms: fc.integer({ min: 0, max: 40_000 }) }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("check" as const), upstream: fc.nat(11) }) },
);

test("property: ejected upstreams per pool never exceed max(1, ⌊ratio × size⌋)", () => {
  fc.assert(
    fc.property(
      fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 1, maxLength: 4 }),
      fc.double({ min: 0, max: 1, noNaN: true }),
      fc.array(op, { maxLength: 300 }),
      (poolSizes, maxEjectionRatio, ops) => {
        const clock = fakeClock();
        const d = new OutlierDetector({
          now: clock.now,
          maxEjectionRatio,
          consecutiveFailures: 3,
          minRequests: 6,
        });
        const ids: string[] = [];
        poolSizes.forEach((size, p) => {
          for (let i = 0; i < size; i++) {
            ids.push(`u${p}.${i}`);
            d.register(`u${p}.${i}`, `pool${p}`);
          }
        });
        for (const o of ops) {
          if (o.kind === "tick") clock.advance(o.ms);
          else {
            const id = ids[o.upstream % ids.length] as string;
            if (o.kind === "fail") d.recordFailure(id);
            else if (o.kind === "ok") d.recordSuccess(id);
            else d.isEjected(id);
          }
          poolSizes.forEach((size, p) => {
            const out = d.ejected(`pool${p}`).length;
            assert.ok(out <= ejectionCap(maxEjectionRatio, size), `pool${p}: ${out} of ${size} out`);
          });
        }
      },
    ),
    { numRuns: 200 },
  );
});

test("property: repeated ejections last base × n capped at max, and each ends on time", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 60_000 }),
      fc.integer({ min: 0, max: 400_000 }),
      fc.array(fc.integer({ min: 0, max: 9_999 }), { minLength: 1, maxLength: 15 }),
      (baseEjectionMs, extra, gaps) => {
        const maxEjectionMs = baseEjectionMs + extra;
        const clock = fakeClock();
        const d = new OutlierDetector({ now: clock.now, baseEjectionMs, maxEjectionMs });
        const durations: number[] = [];
        d.onEject((e) => durations.push(e.durationMs));
        gaps.forEach((gap, i) => {
          // Fail again less than one decay period (10 s) after returning: nothing is forgiven.
          clock.advance(gap);
          fail(d, "a", 5);
          const expected = Math.min(maxEjectionMs, baseEjectionMs * (i + 1));
          assert.equal(durations[i], expected);
          if (i > 0) assert.ok((durations[i] ?? 0) >= (durations[i - 1] ?? 0), "non-decreasing");
          clock.advance(expected - 1);
          assert.equal(d.isEjected("a"), true, "still out just before its time");
          clock.advance(1);
          assert.equal(d.isEjected("a"), false, "back once its time has passed");
        });
      },
    ),
    { numRuns: 200 },
  );
});
