/**
 * Recent latency of one route, for hedging: a hedge (a second copy of a slow request sent to
 * another upstream) goes out once the first has taken longer than the route's p95. Samples live
 * in a fixed ring of the last `windowSize` latencies; quantiles come from a sorted copy that is
 * refreshed only after enough new samples, so asking on every request stays cheap.
 */
import { integerIn } from "./validate.js";

/** Options of a {@link LatencyTracker}. */
export interface LatencyTrackerOptions {
  /** How many of the most recent samples are kept. Default 1000. */
  readonly windowSize?: number;
  /** Samples needed before quantiles are answered. Default 20. */
  readonly minSamples?: number;
  /**
   * New samples after which the sorted copy is refreshed (fewer while the window is small, at
   * most one twentieth of it). Default 50.
   */
  readonly refreshEvery?: number;
}

/** The part of a route's configuration that hedging looks at. */
export interface HedgeRoute {
  /** True when the route opts in to hedged requests. Default (absent): no hedging. */
  readonly hedge?: boolean | undefined;
}

/**
 * A sliding window of one route's latencies in ms. Recording is O(1) with no allocation; a
 * quantile costs a sort of the window at most once per `refreshEvery` samples, and O(1) otherwise.
 */
export class LatencyTracker {
  /** Samples kept (default 1000). */
  readonly windowSize: number;
  /** Samples needed for an answer (default 20). */
  readonly minSamples: number;
  /** Samples between refreshes of the sorted copy (default 50). */
  readonly refreshEvery: number;
  readonly #ring: Float64Array;
  readonly #sorted: Float64Array;
  #next = 0;
  #count = 0;
  #sortedCount = 0;
  #stale = 0;

  /** Creates a tracker; throws a `RangeError` naming the option when one is out of range. */
  constructor(options: LatencyTrackerOptions = {}) {
    const o = "LatencyTracker";
    this.windowSize = integerIn(o, "windowSize", options.windowSize, 1000, 1, 1 << 24);
    this.minSamples = integerIn(o, "minSamples", options.minSamples, 20, 1, this.windowSize);
    this.refreshEvery = integerIn(o, "refreshEvery", options.refreshEvery, 50, 1, Number.MAX_SAFE_INTEGER);
    this.#ring = new Float64Array(this.windowSize);
    this.#sorted = new Float64Array(this.windowSize);
  }

  /** Samples in the window now (at most `windowSize`). */
  get count(): number {
    return this.#count;
  }

  /** Adds one latency in ms; negative, infinite and NaN values are ignored. */
  record(latencyMs: number): void {
    if (!(latencyMs >= 0 && latencyMs < Number.POSITIVE_INFINITY)) return;
    this.#ring[this.#next] = latencyMs;
    this.#next = this.#next + 1 === this.windowSize ? 0 : this.#next + 1;
    if (this.#count < this.windowSize) this.#count++;
    this.#stale++;
  }

  /**
   * The `q` quantile (0–1, nearest rank) of the window in ms, or undefined with fewer than
   * `minSamples` samples or a `q` outside [0, 1].
   */
  quantile(q: number): number | undefined {
    if (this.#count < this.minSamples || !(q >= 0 && q <= 1)) return undefined;
    this.#refresh();
    const n = this.#sortedCount;
    const rank = Math.ceil(q * n);
    return this.#sorted[rank > 0 ? rank - 1 : 0];
  }

  /** The 95th percentile in ms, or undefined until `minSamples` samples are in. */
  p95(): number | undefined {
    return this.quantile(0.95);
  }

  /** Forgets every sample (e.g. after a deployment changed the route's behaviour). */
  reset(): void {
    this.#next = 0;
    this.#count = 0;
    this.#sortedCount = 0;
    this.#stale = 0;
  }

  #refresh(): void {
    const n = this.#count;
    // While the window fills, refresh after each twentieth more, so early answers track quickly.
    const due = Math.min(this.refreshEvery, Math.ceil(n / 20));
    if (this.#sortedCount !== 0 && this.#stale < due) return;
    // Before the ring wraps, its samples are exactly [0, n); after, all of it.
    for (let i = 0; i < n; i++) this.#sorted[i] = this.#ring[i] as number;
    this.#sorted.subarray(0, n).sort();
    this.#sortedCount = n;
    this.#stale = 0;
  }
}

/** True when a request may be hedged: an idempotent read (GET or HEAD) on a route that opted in. */
export function shouldHedge(method: string, route: HedgeRoute): boolean {
  return route.hedge === true && (method === "GET" || method === "HEAD");
}

/**
 * How long to wait before sending a hedge: the route's p95 when {@link shouldHedge} allows one,
 * undefined when it does not or the tracker has too few samples yet.
 */
export function hedgeDelayMs(method: string, route: HedgeRoute, tracker: LatencyTracker): number | undefined {
  return shouldHedge(method, route) ? tracker.p95() : undefined;
}
