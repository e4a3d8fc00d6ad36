/**
 * A sliding window of request outcomes for one upstream: a ring of 10 buckets, each a tenth of the
 * interval, so the counts cover the last 90–100% of the interval. Recording is O(1) (at most 10
 * bucket clears after a pause) and allocates nothing after construction.
 */

const BUCKETS = 10;

/** Requests and failures over roughly the last `intervalMs`, advanced lazily by the times given to it. */
export class FailureWindow {
  /** Requests counted in the window. */
  total = 0;
  /** Failures counted in the window. */
  failed = 0;
  readonly #bucketMs: number;
  readonly #requests = new Uint32Array(BUCKETS);
  readonly #failures = new Uint32Array(BUCKETS);
  #head = Number.NEGATIVE_INFINITY;

  /** Creates an empty window over `intervalMs` (> 0). */
  constructor(intervalMs: number) {
    this.#bucketMs = intervalMs / BUCKETS;
  }

  /** Counts one outcome at `nowMs`; a clock that steps back counts into the newest bucket. */
  record(nowMs: number, failed: boolean): void {
    const slot = this.advance(nowMs);
    this.#requests[slot] = (this.#requests[slot] ?? 0) + 1;
    this.total++;
    if (failed) {
      this.#failures[slot] = (this.#failures[slot] ?? 0) + 1;
      this.failed++;
    }
  }

  /** Slides the window to `nowMs`, dropping buckets that left it; returns the current bucket's slot. */
  advance(nowMs: number): number {
    const index = Math.floor(nowMs / this.#bucketMs);
    if (index > this.#head) {
      if (index - this.#head >= BUCKETS) {
        if (this.total > 0) this.reset();
      } else {
        for (let i = this.#head + 1; i <= index; i++) {
          const slot = slotOf(i);
          this.total -= this.#requests[slot] ?? 0;
          this.failed -= this.#failures[slot] ?? 0;
          this.#requests[slot] = 0;
          this.#failures[slot] = 0;
        }
      }
      this.#head = index;
    }
    return slotOf(this.#head);
  }

  /** Forgets every outcome. */
  reset(): void {
    this.total = 0;
    this.failed = 0;
    this.#requests.fill(0);
    this.#failures.fill(0);
  }
}

function slotOf(index: number): number {
  const slot = index % BUCKETS;
  return slot < 0 ? slot + BUCKETS : slot;
}
