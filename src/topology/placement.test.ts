import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import {
  cellOfTenant,
  cellSizes,
  defaultBucketTable,
  hash32,
  moveBucket,
  type PlacementRegion,
  placeCells,
  regionsByPreference,
  tenantBucket,
} from "./placement.js";

test("hash32 is MurmurHash3 x86_32 (published test vectors)", () => {
  assert.equal(hash32(""), 0);
  assert.equal(hash32("", 1), 0x514e28b7);
  assert.equal(hash32("hello"), 0x248bfa47);
  assert.equal(hash32("The quick brown fox jumps over the lazy dog"), 0x2e4ff723);
});

test("placement is deterministic: same tenant, same bucket, same cell", () => {
  fc.assert(
    fc.property(fc.string({ maxLength: 80 }), fc.integer({ min: 1, max: 1 << 20 }), (tenant, buckets) => {
      const b = tenantBucket(tenant, buckets);
      assert.ok(Number.isInteger(b) && b >= 0 && b < buckets);
      assert.equal(tenantBucket(tenant, buckets), b);
      assert.equal(hash32(tenant), hash32(`${tenant}`));
    }),
  );
});

test("every bucket maps to exactly one cell and cell sizes differ by at most one bucket", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 20_000 }),
      fc.integer({ min: 1, max: 500 }),
      (buckets, cellsWanted) => {
        const cells = Math.min(buckets, cellsWanted);
        const table = defaultBucketTable(buckets, cells);
        assert.equal(table.length, buckets);
        for (const cell of table) assert.ok(cell < cells, "bucket maps to a real cell");
        const sizes = cellSizes(table, cells);
        assert.equal(
          sizes.reduce((a, b) => a + b, 0),
          buckets,
          "each bucket counted once",
        );
        assert.ok(
          Math.max(...sizes) - Math.min(...sizes) <= 1,
          `sizes ${Math.min(...sizes)}..${Math.max(...sizes)}`,
        );
      },
    ),
    { numRuns: 200 },
  );
});

test("moving one bucket moves only that bucket's tenants", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 2, max: 64 }),
      fc.array(fc.string({ minLength: 1, maxLength: 24 }), { minLength: 1, maxLength: 200 }),
      fc.nat(),
      fc.nat(),
      (cells, tenants, bucketSeed, cellSeed) => {
        const buckets = 1024;
        const before = defaultBucketTable(buckets, cells);
        const bucket = bucketSeed % buckets;
        const target = cellSeed % cells;
        const after = moveBucket(before, bucket, target);
        assert.notEqual(after, before, "the original table is not modified");
        for (const t of tenants) {
          const moved = tenantBucket(t, buckets) === bucket;
          if (moved) assert.equal(cellOfTenant(after, t), target);
          else assert.equal(cellOfTenant(after, t), cellOfTenant(before, t));
        }
      },
    ),
  );
});

const regionsArb = fc.integer({ min: 1, max: 12 }).chain((n) =>
  fc.tuple(
    fc.constant(n),
    fc.array(fc.integer({ min: 1, max: 300 }), {
      minLength: (n * (n - 1)) / 2,
      maxLength: (n * (n - 1)) / 2,
    }),
  ),
);

function makeRegions(n: number, latencies: number[]): PlacementRegion[] {
  const names = Array.from({ length: n }, (_, i) => `r${i}`);
  const latency: Record<string, Record<string, number>> = Object.fromEntries(names.map((x) => [x, {}]));
  let k = 0;
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      const ms = latencies[k++] as number;
      (latency[names[i] as string] as Record<string, number>)[names[j] as string] = ms;
      (latency[names[j] as string] as Record<string, number>)[names[i] as string] = ms;
    }
  }
  return names.map((name, i) => ({
    name,
    pair: i % 2 === 0 && i + 1 < n ? names[i + 1] : i % 2 === 1 ? names[i - 1] : undefined,
    latencyMs: latency[name] as Record<string, number>,
  }));
}

test("cell replicas never share a region and homes are balanced", () => {
  fc.assert(
    fc.property(regionsArb, fc.integer({ min: 1, max: 300 }), fc.nat(), ([n, latencies], cells, r) => {
      const regions = makeRegions(n, latencies);
      const replicas = 1 + (r % n);
      const placed = placeCells(regions, cells, replicas);
      assert.equal(placed.length, cells);
      const homes = new Map<string, number>();
      for (const list of placed) {
        assert.equal(list.length, replicas);
        assert.equal(new Set(list).size, list.length, `replicas share a region: ${list.join(",")}`);
        homes.set(list[0] as string, (homes.get(list[0] as string) ?? 0) + 1);
      }
      const counts = regions.map((x) => homes.get(x.name) ?? 0);
      assert.ok(Math.max(...counts) - Math.min(...counts) <= 1, `homes ${counts.join(",")}`);
      assert.deepEqual(placeCells(regions, cells, replicas), placed, "deterministic");
    }),
  );
});

test("a cell's first standby is its home's pair, then the nearest region", () => {
  const regions = makeRegions(4, [10, 50, 60, 20, 30, 5]);
  // r0 pairs with r1; r2 is nearer to r0 (50) than r3 (60).
  assert.deepEqual(placeCells(regions, 1, 3)[0], ["r0", "r1", "r2"]);
  // r2 pairs with r3; then r1 (30) is nearer than r0 (50).
  assert.deepEqual(placeCells(regions, 3, 3)[2], ["r2", "r3", "r1"]);
});

test("a new primary's region is preferred: the pair (either side declared it), then the nearest", () => {
  // r0 pairs with r1 although r2 is nearer; r3 names r2 as its pair, which r2 did not declare.
  const regions: PlacementRegion[] = [
    { name: "r0", pair: "r1", latencyMs: { r1: 50, r2: 10, r3: 30 } },
    { name: "r1", pair: "r0", latencyMs: { r0: 50, r2: 20, r3: 20 } },
    { name: "r2", pair: undefined, latencyMs: { r0: 10, r1: 20, r3: 40 } },
    { name: "r3", pair: "r2", latencyMs: { r0: 30, r1: 20, r2: 40 } },
  ];
  assert.deepEqual(regionsByPreference(regions, "r0"), ["r1", "r2", "r3"]);
  assert.deepEqual(regionsByPreference(regions, "r2"), ["r3", "r0", "r1"]);
  // Equal latency: by name.
  assert.deepEqual(regionsByPreference(regions, "r1"), ["r0", "r2", "r3"]);
});

test("pinned cells keep their regions", () => {
  const regions = makeRegions(3, [10, 20, 30]);
  const placed = placeCells(regions, 3, 2, new Map([[1, ["r2", "r0"]]]));
  assert.deepEqual(placed[1], ["r2", "r0"]);
});
