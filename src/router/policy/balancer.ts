/**
 * Picking the upstream for an attempt. Candidates arrive ordered by region preference (own region
 * first, then nearest); the nearest region with an eligible candidate wins, and within it the
 * least-outstanding candidate, ties broken by a rotating index (or power of two choices). Each pick
 * is O(candidates), allocates nothing and creates no closures.
 */

/** An instance that may serve the request, with its current in-flight count. */
export interface UpstreamCandidate {
  readonly id: string;
  readonly zone: string;
  readonly region: string;
  /** Requests in flight to this upstream now. */
  readonly outstanding: number;
}

/**
 * Upstreams that must not be picked (ejected, drained, unhealthy, already tried): a set of ids, or a
 * predicate that returns true for an excluded id. Build it once, not per request, where possible.
 */
export type Exclusion = ReadonlySet<string> | ((id: string, candidate: UpstreamCandidate) => boolean);

/** Options of {@link chooseUpstream}. Pass a constant object when nothing varies per request. */
export interface ChooseOptions {
  /** Upstreams to skip. Default: none. */
  readonly exclude?: Exclusion | undefined;
  /**
   * Power of two choices: compare two random eligible candidates instead of scanning for the least
   * outstanding. Default false (least outstanding with rotating ties).
   */
  readonly p2c?: boolean | undefined;
}

/** Options of {@link chooseRetryTarget}. */
export interface RetryTargetOptions extends ChooseOptions {
  /** Ids already tried for this request (a handful at most, so an array is fine); never picked again. */
  readonly tried: ReadonlySet<string> | readonly string[];
  /** Where the previous attempt went: a different zone, then a different region, is preferred. */
  readonly previous?: { readonly zone: string; readonly region: string } | undefined;
}

/** Options of a {@link BalancerState}. */
export interface BalancerStateOptions {
  /** Uniform random numbers in [0, 1), for power of two choices. Default `Math.random`. */
  readonly random?: () => number;
  /** The first value of the rotating tie-break index. Default 0. */
  readonly start?: number;
}

const NO_OPTIONS: ChooseOptions = Object.freeze({});
const ROTATION_LIMIT = 0x3fffffff;

/**
 * The mutable part of balancing: a rotating tie-break index and a random source. Keep one per
 * router (or per route) so successive picks spread over equally loaded upstreams.
 */
export class BalancerState {
  #rotation: number;
  readonly #random: () => number;

  /** Creates a state starting at `options.start` (default 0) drawing from `options.random` (default `Math.random`). */
  constructor(options: BalancerStateOptions = {}) {
    this.#rotation = Math.abs(Math.trunc(options.start ?? 0)) % (ROTATION_LIMIT + 1);
    this.#random = options.random ?? Math.random;
  }

  /** The tie-break index for this pick; advances by one each call and wraps around. */
  nextRotation(): number {
    const r = this.#rotation;
    this.#rotation = r === ROTATION_LIMIT ? 0 : r + 1;
    return r;
  }

  /** A uniform integer in [0, n) from the random source (0 when n ≤ 1 or the source misbehaves). */
  randomIndex(n: number): number {
    if (n <= 1) return 0;
    const i = Math.floor(this.#random() * n);
    return i >= 0 && i < n ? i : 0;
  }
}

/**
 * The upstream for a first attempt: the first region (in candidate order) with an eligible
 * candidate, and within it the least outstanding, ties rotating (or p2c when `options.p2c`).
 * Undefined when every candidate is excluded.
 */
export function chooseUpstream<C extends UpstreamCandidate>(
  candidates: readonly C[],
  state: BalancerState,
  options: ChooseOptions = NO_OPTIONS,
): C | undefined {
  return pick(candidates, state, options.exclude, undefined, undefined, undefined, options.p2c === true);
}

/**
 * The upstream for a retry: never one already tried or excluded; preferably in another zone than
 * the previous attempt, nearest region first (so the same region's other zones, then the next
 * region); only if none is left, another upstream in the previous attempt's zone.
 */
export function chooseRetryTarget<C extends UpstreamCandidate>(
  candidates: readonly C[],
  state: BalancerState,
  options: RetryTargetOptions,
): C | undefined {
  const p2c = options.p2c === true;
  const previous = options.previous;
  if (previous !== undefined) {
    const elsewhere = pick(
      candidates,
      state,
      options.exclude,
      options.tried,
      previous.region,
      previous.zone,
      p2c,
    );
    if (elsewhere !== undefined) return elsewhere;
  }
  return pick(candidates, state, options.exclude, options.tried, undefined, undefined, p2c);
}

function pick<C extends UpstreamCandidate>(
  candidates: readonly C[],
  state: BalancerState,
  exclude: Exclusion | undefined,
  tried: ReadonlySet<string> | readonly string[] | undefined,
  avoidRegion: string | undefined,
  avoidZone: string | undefined,
  p2c: boolean,
): C | undefined {
  const n = candidates.length;
  let first = 0;
  for (; first < n; first++) {
    if (eligible(candidates[first] as C, exclude, tried, avoidRegion, avoidZone)) break;
  }
  if (first === n) return undefined;
  const region = (candidates[first] as C).region;

  if (p2c) {
    let count = 0;
    for (let i = first; i < n; i++) {
      const c = candidates[i] as C;
      if (c.region === region && eligible(c, exclude, tried, avoidRegion, avoidZone)) count++;
    }
    if (count === 1) return candidates[first];
    const a = state.randomIndex(count);
    let b = state.randomIndex(count - 1);
    if (b >= a) b++;
    let ca: C | undefined;
    let cb: C | undefined;
    for (let i = first, k = 0; i < n && (ca === undefined || cb === undefined); i++) {
      const c = candidates[i] as C;
      if (c.region !== region || !eligible(c, exclude, tried, avoidRegion, avoidZone)) continue;
      if (k === a) ca = c;
      else if (k === b) cb = c;
      k++;
    }
    if (ca === undefined || cb === undefined) return ca ?? cb;
    return cb.outstanding < ca.outstanding ? cb : ca;
  }

  let min = Number.POSITIVE_INFINITY;
  let ties = 0;
  let best: C | undefined;
  for (let i = first; i < n; i++) {
    const c = candidates[i] as C;
    if (c.region !== region || !eligible(c, exclude, tried, avoidRegion, avoidZone)) continue;
    if (c.outstanding < min) {
      min = c.outstanding;
      ties = 1;
      best = c;
    } else if (c.outstanding === min) ties++;
  }
  // A single least-loaded candidate needs no rotation; NaN counts leave the first eligible one.
  if (ties <= 1) return best ?? candidates[first];
  let k = state.nextRotation() % ties;
  for (let i = first; i < n; i++) {
    const c = candidates[i] as C;
    if (c.region !== region || c.outstanding !== min || !eligible(c, exclude, tried, avoidRegion, avoidZone))
      continue;
    if (k === 0) return c;
    k--;
  }
  return candidates[first];
}

function eligible(
  c: UpstreamCandidate,
  exclude: Exclusion | undefined,
  tried: ReadonlySet<string> | readonly string[] | undefined,
  avoidRegion: string | undefined,
  avoidZone: string | undefined,
): boolean {
  // Zone names may repeat across regions ("a", "b"), so a zone is its region and its name.
  if (avoidZone !== undefined && c.zone === avoidZone && c.region === avoidRegion) return false;
  if (tried !== undefined && (isSet(tried) ? tried.has(c.id) : tried.includes(c.id))) return false;
  if (exclude === undefined) return true;
  return isSet(exclude) ? !exclude.has(c.id) : !exclude(c.id, c);
}

function isSet<T>(x: ReadonlySet<string> | T): x is ReadonlySet<string> {
  return typeof (x as ReadonlySet<string>).has === "function";
}
