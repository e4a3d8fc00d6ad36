import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { RingfenceError } from "../lib/errors.js";
import { defaultBucketTable, moveBucket } from "../topology/placement.js";
import { cellOf, cellsInTable, chooseTenants } from "./tenants.js";

test("every cell gets tenants, none more than ⌈T / cells⌉, and each tenant is in the cell it is listed with", () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 12 }), fc.integer({ min: 0, max: 300 }), (cells, extra) => {
      const table = defaultBucketTable(1024, cells);
      const count = cells + extra;
      const tenants = chooseTenants({ count, table });
      assert.equal(tenants.length, count);
      assert.equal(new Set(tenants.map((t) => t.tenant)).size, count, "tenant ids are unique");
      const perCell = new Map<string, number>();
      for (const t of tenants) {
        assert.equal(t.cell, cellOf(t.tenant, table));
        assert.match(t.tenant, /^load-\d+$/);
        perCell.set(t.cell, (perCell.get(t.cell) ?? 0) + 1);
      }
      assert.deepEqual([...perCell.keys()].sort(), cellsInTable(table).sort(), "every cell covered");
      for (const n of perCell.values()) assert.ok(n >= 1 && n <= Math.ceil(count / cells));
    }),
    { numRuns: 100, interruptAfterTimeLimit: 10_000 },
  );
});

test("tenant choice is deterministic for a bucket table", () => {
  const table = defaultBucketTable(16384, 4);
  assert.deepEqual(chooseTenants({ count: 10, table }), chooseTenants({ count: 10, table }));
});

test("a cell that owns few buckets still gets its tenants; a cell that owns none is not required", () => {
  // Cell 3 keeps one bucket of 256; cell 2 loses all of its buckets to cell 0.
  let table = defaultBucketTable(256, 4);
  for (let b = 0; b < 256; b++) {
    if (table[b] === 3 && b !== 3) table = moveBucket(table, b, 1);
    if (table[b] === 2) table = moveBucket(table, b, 0);
  }
  assert.deepEqual(cellsInTable(table), ["cell-0", "cell-1", "cell-3"]);
  const tenants = chooseTenants({ count: 9, table });
  assert.equal(tenants.filter((t) => t.cell === "cell-3").length, 3);
});

test("fewer tenants than cells is a usage error that says how many are needed", () => {
  assert.throws(
    () => chooseTenants({ count: 3, table: defaultBucketTable(64, 4) }),
    (err: unknown) =>
      err instanceof RingfenceError &&
      err.code === "RINGFENCE_USAGE" &&
      /--tenants 4 or more/.test(err.message),
  );
});
