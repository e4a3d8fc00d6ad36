import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { LoadShedder } from "./shedder.js";

test("defaults to 1000 in flight per key; keys are independent", () => {
  const shedder = new LoadShedder();
  assert.equal(shedder.limit, 1000);
  for (let i = 0; i < 1000; i++) assert.ok(shedder.tryAcquire("cell-0"));
  assert.equal(shedder.tryAcquire("cell-0"), false);
  assert.ok(shedder.tryAcquire("cell-1"));
  assert.deepEqual(shedder.stats("cell-0"), { inFlight: 1000, limit: 1000, shed: 1 });
  shedder.release("cell-0");
  assert.ok(shedder.tryAcquire("cell-0"));
});

test("releases never drive the count negative; unknown keys read as empty", () => {
  const shedder = new LoadShedder({ limit: 2 });
  shedder.release("nobody");
  shedder.tryAcquire("k");
  shedder.release("k");
  shedder.release("k");
  assert.equal(shedder.inFlight("k"), 0);
  assert.equal(shedder.inFlight("nobody"), 0);
  assert.deepEqual(shedder.stats("nobody"), { inFlight: 0, limit: 2, shed: 0 });
});

test("per-key limits, including lowering below the current count", () => {
  const shedder = new LoadShedder({ limit: 5 });
  for (let i = 0; i < 4; i++) shedder.tryAcquire("k");
  shedder.setLimit("k", 2);
  assert.equal(shedder.tryAcquire("k"), false);
  shedder.release("k");
  shedder.release("k");
  assert.equal(shedder.tryAcquire("k"), false, "2 in flight, limit 2");
  shedder.release("k");
  assert.ok(shedder.tryAcquire("k"));
  assert.throws(() => shedder.setLimit("k", -1), /LoadShedder/);
  assert.throws(() => new LoadShedder({ limit: 1.5 }), /LoadShedder\.limit/);
  const closed = new LoadShedder({ limit: 0 });
  assert.equal(closed.tryAcquire("k"), false);
});

test("property: never more than the limit in flight, and the count matches a model", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 20 }),
      fc.array(fc.record({ acquire: fc.boolean(), key: fc.constantFrom("c0", "c1", "c2") }), {
        maxLength: 500,
      }),
      (limit, events) => {
        const shedder = new LoadShedder({ limit });
        const model = new Map<string, number>();
        for (const { acquire, key } of events) {
          const held = model.get(key) ?? 0;
          if (acquire) {
            const ok = shedder.tryAcquire(key);
            assert.equal(ok, held < limit);
            if (ok) model.set(key, held + 1);
          } else {
            shedder.release(key);
            model.set(key, Math.max(0, held - 1));
          }
          assert.ok(shedder.inFlight(key) <= limit);
          assert.equal(shedder.inFlight(key), model.get(key) ?? 0);
        }
      },
    ),
    { numRuns: 200 },
  );
});
