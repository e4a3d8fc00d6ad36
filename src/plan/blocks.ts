/**
 * Reliability block diagrams. A request path is a tree of blocks over physical components: in
 * series (all needed), in parallel (any one is enough) or k-of-n (at least k needed). The same
 * component may appear in several places (a region holds both the instances and the database
 * replica of a cell); `evaluate` treats each occurrence as independent, the textbook way, and
 * `exactAvailability` conditions on the shared components so that a region failure takes all of
 * its occurrences down together.
 */

export type Block =
  | { readonly kind: "component"; readonly id: string }
  | { readonly kind: "series"; readonly label: string; readonly children: readonly Block[] }
  | { readonly kind: "parallel"; readonly label: string; readonly children: readonly Block[] }
  | {
      readonly kind: "atLeast";
      readonly label: string;
      readonly k: number;
      readonly children: readonly Block[];
    };

export const component = (id: string): Block => ({ kind: "component", id });
export const series = (label: string, children: readonly Block[]): Block => ({
  kind: "series",
  label,
  children,
});
export const parallel = (label: string, children: readonly Block[]): Block => ({
  kind: "parallel",
  label,
  children,
});
export const atLeast = (label: string, k: number, children: readonly Block[]): Block => ({
  kind: "atLeast",
  label,
  k,
  children,
});

/** Availability of each component by id; `evaluate` throws on an id it does not know. */
export type AvailabilityOf = (id: string) => number;

/** Components in series: all are needed, so availabilities multiply. */
export function seriesAvailability(values: readonly number[]): number {
  let a = 1;
  for (const v of values) a *= v;
  return a;
}

/** Redundant components in parallel: any one suffices, so 1 − Π(1 − aᵢ). */
export function parallelAvailability(values: readonly number[]): number {
  let down = 1;
  for (const v of values) down *= 1 - v;
  return 1 - down;
}

/** At least k of n independent components up (they may differ): dynamic programming over the count. */
export function atLeastAvailability(k: number, values: readonly number[]): number {
  if (k <= 0) return 1;
  if (k > values.length) return 0;
  // p[j] = probability that exactly j of the components seen so far are up.
  let p = [1];
  for (const a of values) {
    const next = new Array<number>(p.length + 1).fill(0);
    for (let j = 0; j < p.length; j++) {
      const pj = p[j] as number;
      next[j] = (next[j] as number) + pj * (1 - a);
      next[j + 1] = (next[j + 1] as number) + pj * a;
    }
    p = next;
  }
  let sum = 0;
  for (let j = k; j < p.length; j++) sum += p[j] as number;
  return Math.min(1, sum);
}

/** Availability of a block, each component occurrence taken as independent. */
export function evaluate(block: Block, availabilityOf: AvailabilityOf): number {
  switch (block.kind) {
    case "component":
      return availabilityOf(block.id);
    case "series":
      return seriesAvailability(block.children.map((c) => evaluate(c, availabilityOf)));
    case "parallel":
      return parallelAvailability(block.children.map((c) => evaluate(c, availabilityOf)));
    case "atLeast":
      return atLeastAvailability(
        block.k,
        block.children.map((c) => evaluate(c, availabilityOf)),
      );
  }
}

/**
 * Whether a block works when exactly the components in `down` have failed and all others work.
 * Pass a `memo` (one per `down` set) to evaluate blocks shared between trees once.
 */
export function works(block: Block, down: ReadonlySet<string>, memo?: Map<Block, boolean>): boolean {
  if (block.kind === "component") return !down.has(block.id);
  const known = memo?.get(block);
  if (known !== undefined) return known;
  let result: boolean;
  switch (block.kind) {
    case "series":
      result = block.children.every((c) => works(c, down, memo));
      break;
    case "parallel":
      result = block.children.some((c) => works(c, down, memo));
      break;
    case "atLeast": {
      let up = 0;
      for (const c of block.children) if (works(c, down, memo)) up++;
      result = up >= block.k;
      break;
    }
  }
  memo?.set(block, result);
  return result;
}

/** How many times each component id occurs in a block. */
export function componentCounts(block: Block, into = new Map<string, number>()): Map<string, number> {
  if (block.kind === "component") into.set(block.id, (into.get(block.id) ?? 0) + 1);
  else for (const c of block.children) componentCounts(c, into);
  return into;
}

/**
 * Evaluates blocks of one model, caching what does not change: the plain (independent) availability
 * of every block, and the component ids under each block. Exact evaluation conditions on shared
 * components and re-evaluates only the blocks that contain them, so a large block shared by every
 * cell (all regions' routers) costs little.
 */
export class BlockEvaluator {
  readonly #of: AvailabilityOf;
  readonly #ids = new WeakMap<Block, ReadonlySet<string>>();
  readonly #plain = new WeakMap<Block, number>();

  constructor(availabilityOf: AvailabilityOf) {
    this.#of = availabilityOf;
  }

  /** The ids of every component under `block`. */
  idsOf(block: Block): ReadonlySet<string> {
    let set = this.#ids.get(block);
    if (!set) {
      if (block.kind === "component") set = new Set([block.id]);
      else {
        const all = new Set<string>();
        for (const c of block.children) for (const id of this.idsOf(c)) all.add(id);
        set = all;
      }
      this.#ids.set(block, set);
    }
    return set;
  }

  /**
   * Whether `block` works with exactly the components in `down` failed, as `works`, visiting only
   * the blocks that contain a failed component (the others work as they would with nothing down).
   */
  survives(block: Block, down: ReadonlySet<string>): boolean {
    if (block.kind === "component") return !down.has(block.id);
    const ids = this.idsOf(block);
    let hit = false;
    for (const id of down) {
      if (ids.has(id)) {
        hit = true;
        break;
      }
    }
    if (!hit) return this.#worksIntact(block);
    switch (block.kind) {
      case "series":
        return block.children.every((c) => this.survives(c, down));
      case "parallel":
        return block.children.some((c) => this.survives(c, down));
      case "atLeast": {
        let up = 0;
        for (const c of block.children) if (this.survives(c, down)) up++;
        return up >= block.k;
      }
    }
  }

  readonly #intact = new WeakMap<Block, boolean>();
  #worksIntact(block: Block): boolean {
    let v = this.#intact.get(block);
    if (v === undefined) {
      v = works(block, new Set());
      this.#intact.set(block, v);
    }
    return v;
  }

  /** Availability with every occurrence independent (as `evaluate`), cached per block. */
  plain(block: Block): number {
    let v = this.#plain.get(block);
    if (v === undefined) {
      v = this.#combine(block, (c) => this.plain(c));
      this.#plain.set(block, v);
    }
    return v;
  }

  /**
   * Availability with the components that occur more than once conditioned on (Shannon
   * expansion): exact when components are independent of each other, however often each appears.
   * At most `maxConditioned` shared components are expanded (highest `priority`, then the most
   * frequent first; 2^n passes); the rest are treated as independent occurrences.
   */
  exact(block: Block, maxConditioned = 10, priority: (id: string) => number = () => 0): number {
    const shared = [...componentCounts(block)]
      .filter(([, n]) => n > 1)
      .sort((a, b) => priority(b[0]) - priority(a[0]) || b[1] - a[1] || (a[0] < b[0] ? -1 : 1))
      .slice(0, maxConditioned)
      .map(([id]) => id);
    if (shared.length === 0) return this.plain(block);
    const fixed = new Map<string, number>();
    const touched = new Map<Block, boolean>();
    const touches = (b: Block) => {
      let t = touched.get(b);
      if (t === undefined) {
        const ids = this.idsOf(b);
        t = shared.some((id) => ids.has(id));
        touched.set(b, t);
      }
      return t;
    };
    const value = (b: Block): number => {
      if (b.kind === "component") return fixed.get(b.id) ?? this.#of(b.id);
      if (!touches(b)) return this.plain(b);
      return this.#combine(b, value);
    };
    const probabilities = shared.map((id) => this.#of(id));
    let total = 0;
    for (let mask = 0; mask < 1 << shared.length; mask++) {
      let weight = 1;
      for (let i = 0; i < shared.length; i++) {
        const up = (mask >> i) & 1;
        const a = probabilities[i] as number;
        weight *= up ? a : 1 - a;
        fixed.set(shared[i] as string, up);
      }
      if (weight > 0) total += weight * value(block);
    }
    return Math.min(1, total);
  }

  #combine(block: Block, value: (b: Block) => number): number {
    switch (block.kind) {
      case "component":
        return this.#of(block.id);
      case "series":
        return seriesAvailability(block.children.map(value));
      case "parallel":
        return parallelAvailability(block.children.map(value));
      case "atLeast":
        return atLeastAvailability(block.k, block.children.map(value));
    }
  }
}

/** Exact availability of one block (see `BlockEvaluator.exact`). */
export function exactAvailability(block: Block, availabilityOf: AvailabilityOf, maxConditioned = 10): number {
  return new BlockEvaluator(availabilityOf).exact(block, maxConditioned);
}
