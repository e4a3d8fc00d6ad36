/**
 * Placement: tenant id → stable 32-bit hash → bucket → cell (through an editable bucket table), and
 * cell → replica regions. Everything here is pure and deterministic.
 */

const encoder = new TextEncoder();
let scratch = new Uint8Array(256);

/** MurmurHash3 (x86, 32-bit) of the UTF-8 bytes of `key`. Stable across processes and versions. */
export function hash32(key: string, seed = 0): number {
  if (key.length * 3 > scratch.length) scratch = new Uint8Array(key.length * 3);
  const { written: len } = encoder.encodeInto(key, scratch);
  const bytes = scratch;
  let h = seed >>> 0;
  const c1 = 0xcc9e2d51;
  const c2 = 0x1b873593;
  const blocks = len & ~3;
  for (let i = 0; i < blocks; i += 4) {
    let k =
      (bytes[i] as number) |
      ((bytes[i + 1] as number) << 8) |
      ((bytes[i + 2] as number) << 16) |
      ((bytes[i + 3] as number) << 24);
    k = Math.imul(k, c1);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, c2);
    h ^= k;
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  const tail = len & 3;
  if (tail > 0) {
    let k = 0;
    if (tail === 3) k ^= (bytes[blocks + 2] as number) << 16;
    if (tail >= 2) k ^= (bytes[blocks + 1] as number) << 8;
    k ^= bytes[blocks] as number;
    k = Math.imul(k, c1);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, c2);
    h ^= k;
  }
  h ^= len;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** The bucket of a tenant: its hash scaled onto `[0, buckets)` (multiply-shift, no modulo bias). */
export function tenantBucket(tenantId: string, buckets: number): number {
  return Math.floor((hash32(tenantId) * buckets) / 4294967296);
}

/** A bucket table maps bucket index → cell index. */
export type BucketTable = Uint32Array;

/** The default table: bucket b → cell b mod cells, so cell sizes differ by at most one bucket. */
export function defaultBucketTable(buckets: number, cells: number): BucketTable {
  if (!Number.isInteger(buckets) || buckets < 1) throw new RangeError(`buckets must be ≥ 1, got ${buckets}`);
  if (!Number.isInteger(cells) || cells < 1 || cells > buckets) {
    throw new RangeError(`cells must be between 1 and buckets (${buckets}), got ${cells}`);
  }
  const table = new Uint32Array(buckets);
  for (let b = 0; b < buckets; b++) table[b] = b % cells;
  return table;
}

/** The cell of a tenant under a bucket table. */
export function cellOfTenant(table: BucketTable, tenantId: string): number {
  return table[tenantBucket(tenantId, table.length)] as number;
}

/** A copy of `table` with one bucket moved to another cell; every other bucket keeps its cell. */
export function moveBucket(table: BucketTable, bucket: number, cell: number): BucketTable {
  if (bucket < 0 || bucket >= table.length) throw new RangeError(`bucket ${bucket} is not in the table`);
  const next = table.slice();
  next[bucket] = cell;
  return next;
}

/** Buckets per cell under a table. */
export function cellSizes(table: BucketTable, cells: number): number[] {
  const sizes = new Array<number>(cells).fill(0);
  for (const cell of table) sizes[cell] = (sizes[cell] ?? 0) + 1;
  return sizes;
}

export interface PlacementRegion {
  readonly name: string;
  readonly pair: string | undefined;
  readonly latencyMs: Readonly<Record<string, number>>;
}

/**
 * Chooses the replica regions of each cell: homes round-robin over the eligible regions (so homes
 * are balanced to within one), then standbys by preference: the home's pair, then the nearest
 * regions by WAN latency, ties going to the region with fewer replicas so far, then by name.
 * No two replicas of a cell share a region. `pinned` cells keep the regions they were given.
 */
export function placeCells(
  regions: readonly PlacementRegion[],
  cellCount: number,
  replicas: number,
  pinned: ReadonlyMap<number, readonly string[]> = new Map(),
): string[][] {
  if (replicas > regions.length) {
    throw new RangeError(`replicas (${replicas}) cannot exceed the number of regions (${regions.length})`);
  }
  const load = new Map<string, number>(regions.map((r) => [r.name, 0]));
  for (const regionsOfCell of pinned.values()) {
    for (const r of regionsOfCell) load.set(r, (load.get(r) ?? 0) + 1);
  }
  const byName = new Map(regions.map((r) => [r.name, r]));
  const result: string[][] = [];
  let next = 0;
  for (let cell = 0; cell < cellCount; cell++) {
    const pin = pinned.get(cell);
    if (pin) {
      result.push([...pin]);
      continue;
    }
    const home = regions[next % regions.length] as PlacementRegion;
    next++;
    const chosen = [home.name];
    load.set(home.name, (load.get(home.name) ?? 0) + 1);
    const candidates = regions
      .filter((r) => r.name !== home.name)
      .map((r) => ({
        name: r.name,
        isPair: home.pair === r.name || byName.get(r.name)?.pair === home.name,
        latency: home.latencyMs[r.name] ?? Number.POSITIVE_INFINITY,
      }));
    while (chosen.length < replicas) {
      let best: (typeof candidates)[number] | undefined;
      for (const c of candidates) {
        if (chosen.includes(c.name)) continue;
        if (best === undefined || preferred(c, best, load)) best = c;
      }
      if (best === undefined) break;
      chosen.push(best.name);
      load.set(best.name, (load.get(best.name) ?? 0) + 1);
    }
    result.push(chosen);
  }
  return result;
}

/**
 * The other regions in the order a cell whose primary was in `from` prefers them for a new primary:
 * `from`'s pair (declared on either side) first, then by WAN latency from `from`, then by name. The
 * failover reconciler breaks ties between equally advanced standbys with it.
 */
export function regionsByPreference(regions: readonly PlacementRegion[], from: string): string[] {
  const origin = regions.find((r) => r.name === from);
  const isPair = (r: PlacementRegion) => origin?.pair === r.name || r.pair === from;
  const latency = (r: PlacementRegion) => origin?.latencyMs[r.name] ?? Number.POSITIVE_INFINITY;
  return regions
    .filter((r) => r.name !== from)
    .sort(
      (a, b) =>
        Number(isPair(b)) - Number(isPair(a)) || latency(a) - latency(b) || a.name.localeCompare(b.name),
    )
    .map((r) => r.name);
}

function preferred(
  a: { name: string; isPair: boolean; latency: number },
  b: { name: string; isPair: boolean; latency: number },
  load: ReadonlyMap<string, number>,
): boolean {
  if (a.isPair !== b.isPair) return a.isPair;
  if (a.latency !== b.latency) return a.latency < b.latency;
  const la = load.get(a.name) ?? 0;
  const lb = load.get(b.name) ?? 0;
  if (la !== lb) return la < lb;
  return a.name < b.name;
}
