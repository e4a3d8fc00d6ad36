/**
 * Monte Carlo simulation of component failures. Every component alternates between up and down
 * with exponentially distributed times to failure (mean MTBF) and to repair (mean MTTR). The block
 * diagrams of all scenarios and cells are compiled into one graph whose shared components (a region,
 * a zone, a provider) are single nodes, so correlated failures are simulated as they happen.
 *
 * Each node keeps a count of its working children; a flip propagates to parents only while it
 * changes their state, so a failure absorbed by redundancy costs O(1). Events come from a binary
 * heap of each component's next transition time.
 */
import { Random } from "../lib/random.js";
import { YEAR_MS } from "../lib/units.js";
import type { Block } from "./blocks.js";
import type { PlanModel } from "./model.js";

export interface SimulationOptions {
  readonly years: number;
  readonly seed?: number;
  /** Called after each simulated year. */
  readonly onProgress?: (yearsDone: number, years: number) => void;
}

export interface SimulatedScenario {
  readonly service: string;
  readonly scenario: string;
  readonly meanAvailability: number;
  /** Median yearly availability (tenant-weighted over cells). */
  readonly p50: number;
  /** Yearly availability reached in 99% of years (the 1st percentile from below). */
  readonly p99: number;
  readonly tenantMinutesLostPerYear: { readonly mean: number; readonly p99: number };
}

export interface SimulationResult {
  readonly years: number;
  readonly seed: number;
  readonly events: number;
  readonly scenarios: readonly SimulatedScenario[];
}

interface Graph {
  readonly componentCount: number;
  readonly mtbf: Float64Array;
  readonly mttr: Float64Array;
  /** Node of each component. */
  readonly componentNode: Int32Array;
  readonly need: Int32Array;
  readonly childCount: Int32Array;
  readonly parentStart: Int32Array;
  readonly parents: Int32Array;
  /** Root record of a node, or -1. */
  readonly rootOf: Int32Array;
  readonly roots: readonly { scenario: number; share: number; node: number }[];
}

/** Compiles scenario blocks into a graph; identical `Block` objects become one node. */
function compileGraph(model: PlanModel): Graph {
  const componentIndex = new Map<string, number>();
  const mtbf: number[] = [];
  const mttr: number[] = [];
  const need: number[] = [];
  const childCount: number[] = [];
  const childLists: number[][] = [];
  const componentNode: number[] = [];
  const memo = new Map<Block, number>();

  const nodeOf = (block: Block): number => {
    if (block.kind === "component") {
      let c = componentIndex.get(block.id);
      if (c === undefined) {
        const entry = model.catalog.get(block.id);
        if (!entry) throw new Error(`unknown component ${block.id}`);
        c = mtbf.length;
        componentIndex.set(block.id, c);
        mtbf.push(entry.mtbfMs);
        mttr.push(entry.mttrMs);
        const node = need.length;
        need.push(1);
        childCount.push(0);
        childLists.push([]);
        componentNode.push(node);
      }
      return componentNode[c] as number;
    }
    const known = memo.get(block);
    if (known !== undefined) return known;
    const children = block.children.map(nodeOf);
    const node = need.length;
    need.push(
      block.kind === "series"
        ? children.length
        : block.kind === "parallel"
          ? Math.min(1, children.length)
          : block.k,
    );
    childCount.push(children.length);
    childLists.push(children);
    memo.set(block, node);
    return node;
  };

  const roots: { scenario: number; share: number; node: number }[] = [];
  model.scenarios.forEach((s, scenario) => {
    for (const c of s.cells) roots.push({ scenario, share: c.cell.tenantShare, node: nodeOf(c.block) });
  });

  // Parent lists in CSR form (a child listed twice under one parent counts twice).
  const nodeCount = need.length;
  const parentCount = new Int32Array(nodeCount);
  for (const children of childLists)
    for (const child of children) parentCount[child] = (parentCount[child] as number) + 1;
  const parentStart = new Int32Array(nodeCount + 1);
  for (let i = 0; i < nodeCount; i++)
    parentStart[i + 1] = (parentStart[i] as number) + (parentCount[i] as number);
  const parents = new Int32Array(parentStart[nodeCount] as number);
  const fill = parentStart.slice(0, nodeCount);
  childLists.forEach((children, node) => {
    for (const child of children) {
      parents[fill[child] as number] = node;
      fill[child] = (fill[child] as number) + 1;
    }
  });
  const rootOf = new Int32Array(nodeCount).fill(-1);
  roots.forEach((r, i) => {
    rootOf[r.node] = i;
  });
  return {
    componentCount: mtbf.length,
    mtbf: Float64Array.from(mtbf),
    mttr: Float64Array.from(mttr),
    componentNode: Int32Array.from(componentNode),
    need: Int32Array.from(need),
    childCount: Int32Array.from(childCount),
    parentStart,
    parents,
    rootOf,
    roots,
  };
}

export function simulate(model: PlanModel, options: SimulationOptions): SimulationResult {
  const years = Math.max(1, Math.floor(options.years));
  const seed = options.seed ?? 1;
  const rng = new Random(seed);
  const g = compileGraph(model);
  const n = g.componentCount;
  const nodeCount = g.need.length;
  const upCount = new Int32Array(nodeCount);
  const componentUp = new Uint8Array(n);
  const downSince = new Float64Array(g.roots.length);
  const downtime = new Float64Array(g.roots.length);
  const scenarioCount = model.scenarios.length;
  const yearly = Array.from({ length: scenarioCount }, () => new Float64Array(years));
  const stack = new Int32Array(nodeCount * 2 + 16);
  const heap = new MinHeap(n);
  let events = 0;

  for (let year = 0; year < years; year++) {
    upCount.set(g.childCount);
    componentUp.fill(1);
    downtime.fill(0);
    for (let c = 0; c < n; c++) heap.set(c, rng.exponential(g.mtbf[c] as number));
    heap.build();
    while (true) {
      const c = heap.top();
      const t = heap.topKey();
      if (t >= YEAR_MS) break;
      events++;
      const nowUp = componentUp[c] === 0;
      componentUp[c] = nowUp ? 1 : 0;
      heap.replaceTop(t + rng.exponential((nowUp ? g.mtbf[c] : g.mttr[c]) as number));
      // Propagate the flip of this component's node while parents change state.
      let sp = 0;
      stack[sp++] = g.componentNode[c] as number;
      stack[sp++] = nowUp ? 1 : 0;
      while (sp > 0) {
        const up = stack[--sp] as number;
        const node = stack[--sp] as number;
        const root = g.rootOf[node] as number;
        if (root >= 0) {
          if (up) downtime[root] = (downtime[root] as number) + t - (downSince[root] as number);
          else downSince[root] = t;
        }
        for (let i = g.parentStart[node] as number, end = g.parentStart[node + 1] as number; i < end; i++) {
          const p = g.parents[i] as number;
          const need = g.need[p] as number;
          const before = (upCount[p] as number) >= need;
          upCount[p] = (upCount[p] as number) + (up ? 1 : -1);
          const after = (upCount[p] as number) >= need;
          if (before !== after) {
            stack[sp++] = p;
            stack[sp++] = after ? 1 : 0;
          }
        }
      }
    }
    g.roots.forEach((r, i) => {
      const down = (upCount[r.node] as number) < (g.need[r.node] as number);
      const total = (downtime[i] as number) + (down ? YEAR_MS - (downSince[i] as number) : 0);
      const series = yearly[r.scenario] as Float64Array;
      series[year] = (series[year] as number) + (total / YEAR_MS) * r.share;
    });
    options.onProgress?.(year + 1, years);
  }

  const tenants = model.topology.load.tenants;
  const minutesPerYear = YEAR_MS / 60_000;
  const scenarios = model.scenarios.map((s, i) => {
    const unavailable = Array.from(yearly[i] as Float64Array).sort((a, b) => a - b);
    const mean = unavailable.reduce((a, b) => a + b, 0) / years;
    return {
      service: s.service.name,
      scenario: s.slo.scenario,
      meanAvailability: 1 - mean,
      p50: 1 - quantile(unavailable, 0.5),
      p99: 1 - quantile(unavailable, 0.99),
      tenantMinutesLostPerYear: {
        mean: mean * minutesPerYear * tenants,
        p99: quantile(unavailable, 0.99) * minutesPerYear * tenants,
      },
    };
  });
  return { years, seed, events, scenarios };
}

/** Nearest-rank quantile of sorted values. */
function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return 0;
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[index] as number;
}

/** A binary min-heap of item indices keyed by time. */
class MinHeap {
  readonly #keys: Float64Array;
  readonly #items: Int32Array;
  constructor(size: number) {
    this.#keys = new Float64Array(size);
    this.#items = new Int32Array(size);
  }
  set(item: number, key: number): void {
    this.#items[item] = item;
    this.#keys[item] = key;
  }
  build(): void {
    for (let i = (this.#items.length >> 1) - 1; i >= 0; i--) this.#down(i);
  }
  top(): number {
    return this.#items[0] as number;
  }
  topKey(): number {
    return this.#items.length === 0 ? Number.POSITIVE_INFINITY : (this.#keys[0] as number);
  }
  replaceTop(key: number): void {
    this.#keys[0] = key;
    this.#down(0);
  }
  #down(i: number): void {
    const keys = this.#keys;
    const items = this.#items;
    const size = items.length;
    const key = keys[i] as number;
    const item = items[i] as number;
    while (true) {
      let child = 2 * i + 1;
      if (child >= size) break;
      if (child + 1 < size && (keys[child + 1] as number) < (keys[child] as number)) child++;
      if ((keys[child] as number) >= key) break;
      keys[i] = keys[child] as number;
      items[i] = items[child] as number;
      i = child;
    }
    keys[i] = key;
    items[i] = item;
  }
}
