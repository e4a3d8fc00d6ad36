/**
 * Passive outlier ejection in Envoy's style: the router reports each upstream's outcomes, and an
 * upstream that fails too often is taken out of rotation for a while. Ejections are limited per
 * pool (e.g. "cell-0 in us-east") so a pool-wide problem cannot eject a whole pool at once, and
 * returns happen lazily when asked after the ejection time, against the injected clock: no timers.
 * Each report is O(1) with no allocation; the failure-ratio window is a ring of 10 counters.
 */
import { FailureWindow } from "./failure-window.js";
import { integerIn, numberIn } from "./validate.js";

/** Options of an {@link OutlierDetector}; durations in ms. */
export interface OutlierOptions {
  /** Failures in a row that eject an upstream; 0 turns this rule off. Default 5. */
  readonly consecutiveFailures?: number;
  /** Failure share over `intervalMs` that ejects an upstream, in (0, 1]. Default 0.5. */
  readonly failureRatio?: number;
  /** The sliding window of the failure-ratio rule. Default 10 000 (10 s). */
  readonly intervalMs?: number;
  /** Requests the window needs before the failure-ratio rule applies; 0 turns the rule off. Default 20. */
  readonly minRequests?: number;
  /** Ejection time per ejection so far: the n-th ejection lasts n × baseEjectionMs. Default 30 000. */
  readonly baseEjectionMs?: number;
  /** The longest ejection. Default 300 000 (300 s), or baseEjectionMs when that is larger. */
  readonly maxEjectionMs?: number;
  /**
   * Each full period an upstream stays in rotation after a return forgives one past ejection, as
   * Envoy does each interval; `Infinity` never forgives. Default: `intervalMs`.
   */
  readonly ejectionDecayMs?: number;
  /** The share of a pool that may be ejected at once; one upstream always may be. Default 0.5. */
  readonly maxEjectionRatio?: number;
  /** The clock, in epoch ms. Default `Date.now`. */
  readonly now?: () => number;
}

/** Which rule ejected an upstream. */
export type EjectionReason = "consecutive-failures" | "failure-ratio";

/** Emitted when an upstream is ejected. */
export interface EjectionEvent {
  readonly id: string;
  readonly pool: string;
  readonly reason: EjectionReason;
  /** The ejection multiplier after this ejection (1 for a first or fully forgiven ejection). */
  readonly ejections: number;
  readonly durationMs: number;
  /** When the upstream returns, in epoch ms. */
  readonly untilMs: number;
}

/** Emitted when an ejected upstream's time is up, at its first observation after that. */
export interface ReturnEvent {
  readonly id: string;
  readonly pool: string;
  /** When the ejection ended (not when it was observed), in epoch ms. */
  readonly atMs: number;
}

/** A subscription; `dispose()` ends it and may be called more than once. */
export interface Disposable {
  dispose(): void;
}

/** What the detector knows about one upstream, for dashboards and tests. */
export interface UpstreamOutlierState {
  readonly pool: string;
  readonly ejected: boolean;
  /** When the current ejection ends, in epoch ms; undefined when not ejected. */
  readonly ejectedUntilMs: number | undefined;
  /** The ejection multiplier, after forgiveness up to now. */
  readonly ejections: number;
  readonly consecutiveFailures: number;
  readonly windowRequests: number;
  readonly windowFailures: number;
}

/** Totals since the detector was created. */
export interface OutlierStats {
  readonly upstreams: number;
  readonly ejected: number;
  readonly ejectionsTotal: number;
  /** Ejections that a rule called for but `maxEjectionRatio` refused. */
  readonly ejectionsRefused: number;
}

/** The pool of upstreams reported without {@link OutlierDetector.register}. */
export const DEFAULT_POOL = "default";

class Upstream {
  readonly id: string;
  pool: Pool;
  consecutive = 0;
  ejections = 0;
  ejected = false;
  ejectedUntil = 0;
  returnedAt = 0;
  readonly window: FailureWindow;

  constructor(id: string, pool: Pool, intervalMs: number) {
    this.id = id;
    this.pool = pool;
    this.window = new FailureWindow(intervalMs);
  }

  resetWindow(): void {
    this.consecutive = 0;
    this.window.reset();
  }
}

class Pool {
  readonly name: string;
  readonly members = new Set<Upstream>();
  ejected = 0;
  /** The earliest end of an ejection in the pool; lets capacity checks skip the sweep. */
  nextReturn = Number.POSITIVE_INFINITY;

  constructor(name: string) {
    this.name = name;
  }
}

/** How many of a pool's `size` upstreams may be ejected at once under `ratio`. */
export function ejectionCap(ratio: number, size: number): number {
  return Math.max(1, Math.floor(ratio * size + 1e-9));
}

/**
 * Ejects upstreams that fail `consecutiveFailures` times in a row or at least `failureRatio` of
 * `minRequests`+ requests over `intervalMs`, for `baseEjectionMs` × ejections (capped), at most
 * max(1, ⌊maxEjectionRatio × pool size⌋) per pool at once (a product within 1e-9 under a whole
 * number counts as it, so that 0.29 × 100 allows 29 whatever floating point makes of it: see
 * {@link ejectionCap}). Outcomes reported for an ejected
 * upstream are ignored: it is neither re-ejected nor its multiplier raised while it is out.
 */
export class OutlierDetector {
  /** Failures in a row that eject (default 5; 0 = off). */
  readonly consecutiveFailures: number;
  /** Failure share over the window that ejects (default 0.5). */
  readonly failureRatio: number;
  /** The failure-ratio window (default 10 s). */
  readonly intervalMs: number;
  /** Requests the window needs for the ratio rule (default 20; 0 = off). */
  readonly minRequests: number;
  /** Ejection time per past ejection (default 30 s). */
  readonly baseEjectionMs: number;
  /** The longest ejection (default 300 s, at least baseEjectionMs). */
  readonly maxEjectionMs: number;
  /** Time in rotation that forgives one past ejection (default intervalMs). */
  readonly ejectionDecayMs: number;
  /** The share of a pool that may be out at once (default 0.5, always at least one upstream). */
  readonly maxEjectionRatio: number;
  readonly #now: () => number;
  readonly #upstreams = new Map<string, Upstream>();
  readonly #pools = new Map<string, Pool>();
  #onEject: readonly ((event: EjectionEvent) => void)[] = [];
  #onReturn: readonly ((event: ReturnEvent) => void)[] = [];
  #ejectionsTotal = 0;
  #ejectionsRefused = 0;

  /** Creates a detector; throws a `RangeError` naming the option when one is out of range. */
  constructor(options: OutlierOptions = {}) {
    const o = "OutlierDetector";
    const big = Number.MAX_SAFE_INTEGER;
    this.consecutiveFailures = integerIn(o, "consecutiveFailures", options.consecutiveFailures, 5, 0, big);
    this.failureRatio = numberIn(o, "failureRatio", options.failureRatio, 0.5, Number.MIN_VALUE, 1);
    this.intervalMs = numberIn(o, "intervalMs", options.intervalMs, 10_000, 1, big);
    this.minRequests = integerIn(o, "minRequests", options.minRequests, 20, 0, big);
    this.baseEjectionMs = numberIn(o, "baseEjectionMs", options.baseEjectionMs, 30_000, 0, big);
    this.maxEjectionMs = numberIn(
      o,
      "maxEjectionMs",
      options.maxEjectionMs,
      Math.max(300_000, this.baseEjectionMs),
      this.baseEjectionMs,
      big,
    );
    this.ejectionDecayMs = numberIn(
      o,
      "ejectionDecayMs",
      options.ejectionDecayMs,
      this.intervalMs,
      1,
      Infinity,
    );
    this.maxEjectionRatio = numberIn(o, "maxEjectionRatio", options.maxEjectionRatio, 0.5, 0, 1);
    this.#now = options.now ?? Date.now;
  }

  /**
   * Places an upstream in a pool (e.g. `"cell-0/us-east"`); registering it again in another pool
   * moves it with its history. Upstreams reported before being registered are in {@link DEFAULT_POOL}.
   */
  register(id: string, pool: string): void {
    const existing = this.#upstreams.get(id);
    if (existing) {
      if (existing.pool.name === pool) return;
      this.#leavePool(existing);
      existing.pool = this.#pool(pool);
      existing.pool.members.add(existing);
      if (existing.ejected) this.#countEjected(existing);
      return;
    }
    this.#add(id, pool);
  }

  /** Forgets an upstream (it left the routing table), ejected or not; no return event is emitted. */
  unregister(id: string): void {
    const u = this.#upstreams.get(id);
    if (!u) return;
    this.#leavePool(u);
    this.#upstreams.delete(id);
  }

  /** Reports a successful request to `id`. Ignored while `id` is ejected. */
  recordSuccess(id: string): void {
    const u = this.#upstreams.get(id) ?? this.#add(id, DEFAULT_POOL);
    const now = this.#now();
    if (u.ejected && !this.#returnIfDue(u, now)) return;
    u.consecutive = 0;
    u.window.record(now, false);
  }

  /** Reports a failed request to `id` (a 5xx, a reset, a timeout); may eject it. Ignored while ejected. */
  recordFailure(id: string): void {
    const u = this.#upstreams.get(id) ?? this.#add(id, DEFAULT_POOL);
    const now = this.#now();
    if (u.ejected && !this.#returnIfDue(u, now)) return;
    u.consecutive++;
    u.window.record(now, true);
    if (this.consecutiveFailures > 0 && u.consecutive >= this.consecutiveFailures) {
      this.#tryEject(u, now, "consecutive-failures");
    } else if (
      this.minRequests > 0 &&
      u.window.total >= this.minRequests &&
      u.window.failed >= this.failureRatio * u.window.total
    ) {
      this.#tryEject(u, now, "failure-ratio");
    }
  }

  /** True while `id` is ejected; an ejection whose time is up ends here (emitting its return). */
  isEjected(id: string): boolean {
    const u = this.#upstreams.get(id);
    if (!u?.ejected) return false;
    return !this.#returnIfDue(u, this.#now());
  }

  /** The ids ejected now, optionally only those of one pool. O(upstreams). */
  ejected(pool?: string): string[] {
    const now = this.#now();
    const out: string[] = [];
    for (const u of this.#upstreams.values()) {
      if (u.ejected && !this.#returnIfDue(u, now) && (pool === undefined || u.pool.name === pool)) {
        out.push(u.id);
      }
    }
    return out;
  }

  /** Calls `listener` after each ejection, synchronously; the state is already updated. */
  onEject(listener: (event: EjectionEvent) => void): Disposable {
    this.#onEject = [...this.#onEject, listener];
    return {
      dispose: () => {
        this.#onEject = this.#onEject.filter((l) => l !== listener);
      },
    };
  }

  /** Calls `listener` when an ejected upstream returns (observed lazily), synchronously. */
  onReturn(listener: (event: ReturnEvent) => void): Disposable {
    this.#onReturn = [...this.#onReturn, listener];
    return {
      dispose: () => {
        this.#onReturn = this.#onReturn.filter((l) => l !== listener);
      },
    };
  }

  /** What the detector knows about `id`, or undefined for an unknown upstream. */
  inspect(id: string): UpstreamOutlierState | undefined {
    const u = this.#upstreams.get(id);
    if (!u) return undefined;
    const now = this.#now();
    const ejected = u.ejected && !this.#returnIfDue(u, now);
    u.window.advance(now);
    return {
      pool: u.pool.name,
      ejected,
      ejectedUntilMs: ejected ? u.ejectedUntil : undefined,
      ejections: ejected ? u.ejections : this.#forgiven(u, now),
      consecutiveFailures: u.consecutive,
      windowRequests: u.window.total,
      windowFailures: u.window.failed,
    };
  }

  /** Counts of upstreams and ejections. */
  stats(): OutlierStats {
    return {
      upstreams: this.#upstreams.size,
      ejected: this.ejected().length,
      ejectionsTotal: this.#ejectionsTotal,
      ejectionsRefused: this.#ejectionsRefused,
    };
  }

  #add(id: string, poolName: string): Upstream {
    const pool = this.#pool(poolName);
    const u = new Upstream(id, pool, this.intervalMs);
    pool.members.add(u);
    this.#upstreams.set(id, u);
    return u;
  }

  #pool(name: string): Pool {
    let pool = this.#pools.get(name);
    if (!pool) {
      pool = new Pool(name);
      this.#pools.set(name, pool);
    }
    return pool;
  }

  #leavePool(u: Upstream): void {
    const pool = u.pool;
    pool.members.delete(u);
    if (u.ejected) pool.ejected--;
    if (pool.members.size === 0) this.#pools.delete(pool.name);
  }

  #countEjected(u: Upstream): void {
    u.pool.ejected++;
    if (u.ejectedUntil < u.pool.nextReturn) u.pool.nextReturn = u.ejectedUntil;
  }

  #forgiven(u: Upstream, now: number): number {
    if (u.ejections === 0) return 0;
    const forgiven = Math.floor((now - u.returnedAt) / this.ejectionDecayMs);
    return forgiven > 0 ? Math.max(0, u.ejections - forgiven) : u.ejections;
  }

  #tryEject(u: Upstream, now: number, reason: EjectionReason): void {
    const pool = u.pool;
    if (now >= pool.nextReturn) this.#sweep(pool, now);
    const allowed = ejectionCap(this.maxEjectionRatio, pool.members.size);
    if (pool.ejected >= allowed) {
      // Keep the counters: the next failure asks again, and succeeds once capacity frees up.
      this.#ejectionsRefused++;
      return;
    }
    const ejections = this.#forgiven(u, now) + 1;
    const durationMs = Math.min(this.maxEjectionMs, this.baseEjectionMs * ejections);
    u.ejections = ejections;
    u.ejected = true;
    u.ejectedUntil = now + durationMs;
    u.resetWindow();
    this.#countEjected(u);
    this.#ejectionsTotal++;
    const listeners = this.#onEject;
    if (listeners.length > 0) {
      emit(listeners, { id: u.id, pool: pool.name, reason, ejections, durationMs, untilMs: u.ejectedUntil });
    }
  }

  /** Ends every ejection in `pool` whose time is up and recomputes the pool's next return. */
  #sweep(pool: Pool, now: number): void {
    let next = Number.POSITIVE_INFINITY;
    for (const m of pool.members) {
      if (!m.ejected) continue;
      if (!this.#returnIfDue(m, now) && m.ejectedUntil < next) next = m.ejectedUntil;
    }
    pool.nextReturn = next;
  }

  /** Returns `u` if its ejection is over; true when it did (or was not ejected). */
  #returnIfDue(u: Upstream, now: number): boolean {
    if (!u.ejected) return true;
    if (now < u.ejectedUntil) return false;
    u.ejected = false;
    u.returnedAt = u.ejectedUntil;
    u.pool.ejected--;
    u.resetWindow();
    const listeners = this.#onReturn;
    if (listeners.length > 0) emit(listeners, { id: u.id, pool: u.pool.name, atMs: u.ejectedUntil });
    return true;
  }
}

/** Calls every listener; a throwing listener does not stop the others, and its error surfaces after them. */
function emit<E>(listeners: readonly ((event: E) => void)[], event: E): void {
  let failure: unknown;
  let failed = false;
  for (const listener of listeners) {
    try {
      listener(event);
    } catch (err) {
      if (!failed) failure = err;
      failed = true;
    }
  }
  if (failed) throw failure;
}
