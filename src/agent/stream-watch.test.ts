import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { StreamWatch } from "./stream-watch.js";

test("a repointed standby is rewound after 5 s without streaming, then re-cloned if that did not help", () => {
  const w = new StreamWatch();
  w.repointed(0);
  assert.equal(w.notStreaming(1_000, true), undefined);
  assert.equal(w.notStreaming(4_999, true), undefined);
  assert.deepEqual(w.notStreaming(5_000, true), { repair: "rewind", waitedMs: 5_000 });
  // Restarted after the rewind: the long limit now.
  assert.equal(w.notStreaming(6_000, true), undefined);
  assert.equal(w.notStreaming(20_999, true), undefined);
  assert.deepEqual(w.notStreaming(21_000, true), { repair: "reclone", waitedMs: 15_000 });
});

test("streaming clears the count of repairs", () => {
  const w = new StreamWatch({ stuckAfterMs: 100 });
  assert.equal(w.notStreaming(0, true), undefined);
  assert.equal(w.notStreaming(100, true)?.repair, "rewind");
  w.healthy();
  assert.equal(w.notStreaming(200, true), undefined);
  assert.equal(w.notStreaming(300, true)?.repair, "rewind");
});

test("a repair comes exactly when the primary has been ready for a whole limit, never while it is not", () => {
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.integer({ min: 1, max: 20_000 }), fc.boolean()), { maxLength: 200 }),
      (steps) => {
        const w = new StreamWatch();
        let now = 0;
        // Since when the standby has been waiting on a ready primary (the repoint, to begin with).
        let since: number | undefined = 0;
        let limit = 5_000;
        let repairs = 0;
        w.repointed(0);
        for (const [dt, ready] of steps) {
          now += dt;
          const decision = w.notStreaming(now, ready);
          if (!ready) {
            assert.equal(decision, undefined, "repaired with no primary to repair against");
            since = now;
            continue;
          }
          since ??= now;
          assert.equal(
            decision !== undefined,
            now - since >= limit,
            `waited ${now - since} ms, limit ${limit}`,
          );
          if (decision) {
            assert.equal(decision.repair, repairs === 0 ? "rewind" : "reclone");
            repairs++;
            since = undefined; // restarted: the clock starts at the next look
            limit = 15_000;
          }
        }
      },
    ),
  );
});
