import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { RetryBudget } from "./retry-budget.js";

test("with no traffic, 3 retries are allowed in the window and a 4th is denied", () => {
  let now = 0;
  const b = new RetryBudget({ now: () => now });
  assert.ok(b.tryAcquireRetry() && b.tryAcquireRetry() && b.tryAcquireRetry());
  assert.equal(b.tryAcquireRetry(), false);
  assert.equal(b.stats().denied, 1);
  now += 10_001;
  assert.ok(b.tryAcquireRetry(), "the window slid: the floor is available again");
});

test("steady traffic builds a budget of 20% of its requests over the window", () => {
  let now = 0;
  const b = new RetryBudget({ now: () => now });
  for (let i = 0; i < 100; i++) {
    b.requestStarted();
    b.requestFinished();
  }
  // A burst: 20 retries at once (as when an instance dies with requests in flight), then no more.
  let granted = 0;
  for (let i = 0; i < 30; i++) if (b.tryAcquireRetry()) granted++;
  assert.equal(granted, 20);
  for (let i = 0; i < 20; i++) b.retryFinished();
  now += 10_001;
  assert.equal(b.stats().requestsInWindow, 0);
  assert.equal(b.allowedRetries(), 3, "only the floor is left once the requests leave the window");
});

test("options out of range are rejected with the option's name", () => {
  assert.throws(() => new RetryBudget({ budgetRatio: 2 }), /budgetRatio/);
  assert.throws(() => new RetryBudget({ minRetries: -1 }), /minRetries/);
  assert.throws(() => new RetryBudget({ windowMs: 1 }), /windowMs/);
});

test("property: retries in any window never exceed max(3, 20% of that window's requests)", () => {
  const step = fc.oneof(
    fc.constant({ kind: "request" as const }),
    fc.constant({ kind: "retry" as const }),
    fc.integer({ min: 1, max: 3_000 }).map((ms) => ({ kind: "tick" as const, ms })),
  );
  fc.assert(
    fc.property(fc.array(step, { maxLength: 400 }), (steps) => {
      let now = 0;
      const b = new RetryBudget({ now: () => now });
      for (const s of steps) {
        if (s.kind === "request") {
          b.requestStarted();
          b.requestFinished();
        } else if (s.kind === "retry") {
          if (b.tryAcquireRetry()) b.retryFinished();
        } else now += s.ms;
        const st = b.stats();
        assert.ok(
          st.retriesInWindow <= Math.max(3, Math.floor(0.2 * st.requestsInWindow + 1e-9)),
          JSON.stringify(st),
        );
        assert.ok(st.activeRetries >= 0 && st.activeRequests >= 0);
      }
    }),
    { numRuns: 300 },
  );
});
