/**
 * Load shedding by concurrency: each key (a cell) may have at most a bounded number of requests
 * in flight, and one more is refused at once with a fast 503 instead of queueing until everything
 * times out. O(1) per call; a key costs one small record, made on its first request.
 */
import { integerIn } from "./validate.js";

/** Options of a {@link LoadShedder}. */
export interface LoadShedderOptions {
  /** Requests that may be in flight per key unless {@link LoadShedder.setLimit} says otherwise. Default 1000. */
  readonly limit?: number;
}

/** A point-in-time view of one key. */
export interface ShedderKeyStats {
  readonly inFlight: number;
  readonly limit: number;
  /** Requests refused for this key since it was first seen. */
  readonly shed: number;
}

class Slot {
  inFlight = 0;
  shed = 0;
  limit: number;

  constructor(limit: number) {
    this.limit = limit;
  }
}

/**
 * Bounds in-flight requests per key. Keys are kept once seen (they are cells, a bounded set); a
 * release without a matching acquire is ignored, so the count never goes negative.
 */
export class LoadShedder {
  /** The default per-key limit (default 1000). */
  readonly limit: number;
  readonly #slots = new Map<string, Slot>();

  /** Creates a shedder; throws a `RangeError` when `options.limit` is not a whole number ≥ 0. */
  constructor(options: LoadShedderOptions = {}) {
    this.limit = integerIn("LoadShedder", "limit", options.limit, 1000, 0, Number.MAX_SAFE_INTEGER);
  }

  /** Takes a place for one request of `key`: true means go on and call {@link release} later; false means answer 503. */
  tryAcquire(key: string): boolean {
    const slot = this.#slot(key);
    if (slot.inFlight < slot.limit) {
      slot.inFlight++;
      return true;
    }
    slot.shed++;
    return false;
  }

  /** Gives back a place taken with {@link tryAcquire}; ignored when `key` has none in flight. */
  release(key: string): void {
    const slot = this.#slots.get(key);
    if (slot !== undefined && slot.inFlight > 0) slot.inFlight--;
  }

  /** Requests of `key` in flight now (0 for an unknown key). */
  inFlight(key: string): number {
    return this.#slots.get(key)?.inFlight ?? 0;
  }

  /**
   * Sets the limit of one key (e.g. a larger cell). Requests already in flight above a lowered
   * limit finish normally; new ones are refused until the count drops below it.
   */
  setLimit(key: string, limit: number): void {
    this.#slot(key).limit = integerIn(
      "LoadShedder",
      "setLimit(limit)",
      limit,
      this.limit,
      0,
      Number.MAX_SAFE_INTEGER,
    );
  }

  /** Every key seen with its in-flight count (for a metrics scrape). */
  *entries(): IterableIterator<readonly [string, number]> {
    for (const [key, slot] of this.#slots) yield [key, slot.inFlight];
  }

  /** In-flight count, limit and refusals of `key`. */
  stats(key: string): ShedderKeyStats {
    const slot = this.#slots.get(key);
    return { inFlight: slot?.inFlight ?? 0, limit: slot?.limit ?? this.limit, shed: slot?.shed ?? 0 };
  }

  #slot(key: string): Slot {
    let slot = this.#slots.get(key);
    if (slot === undefined) {
      slot = new Slot(this.limit);
      this.#slots.set(key, slot);
    }
    return slot;
  }
}
