/**
 * A retry budget: retries over a sliding window (default 10 s) may be at most `budgetRatio`
 * (default 20%) of the requests over that window, but never fewer than `minRetries` (default 3),
 * so a quiet service still gets its retries. A struggling upstream therefore sees at most about
 * `1 + budgetRatio` times its normal load, never a retry storm, while the burst of retries that
 * follows one instance's death (its in-flight requests all fail at once) fits in the budget that
 * steady traffic built up. (A bound on concurrent retries alone would not do: fast failures retry
 * continuously within any concurrency bound.) O(1) per call: ten buckets of counters.
 */
import { integerIn, numberIn } from "./validate.js";

/** Options of a {@link RetryBudget}. */
export interface RetryBudgetOptions {
  /** Retries allowed per request over the window, in [0, 1]. Default 0.2. */
  readonly budgetRatio?: number;
  /** Retries always allowed in the window, however little traffic there is. Default 3. */
  readonly minRetries?: number;
  /** The sliding window the ratio applies to. Default 10 000 (10 s). */
  readonly windowMs?: number;
  /** The clock, in ms. Default `Date.now`. */
  readonly now?: () => number;
}

/** A point-in-time view of a {@link RetryBudget}, for metrics and tests. */
export interface RetryBudgetStats {
  /** Requests started and not yet finished. */
  readonly activeRequests: number;
  /** Retries acquired and not yet finished. */
  readonly activeRetries: number;
  /** Requests and retries started in the window. */
  readonly requestsInWindow: number;
  readonly retriesInWindow: number;
  /** How many more retries the budget allows in the window right now. */
  readonly allowedRetries: number;
  /** Retries refused since the budget was created. */
  readonly denied: number;
}

const BUCKETS = 10;

export class RetryBudget {
  /** Retries allowed per request over the window (default 0.2). */
  readonly budgetRatio: number;
  /** Retries always allowed in the window (default 3). */
  readonly minRetries: number;
  /** The window of the ratio, in ms (default 10 s). */
  readonly windowMs: number;
  #now: () => number;
  #bucketMs: number;
  #epochs = new Float64Array(BUCKETS).fill(-1);
  #requests = new Float64Array(BUCKETS);
  #retries = new Float64Array(BUCKETS);
  #activeRequests = 0;
  #activeRetries = 0;
  #denied = 0;

  /** Creates a budget; throws a `RangeError` naming the option when one is out of range. */
  constructor(options: RetryBudgetOptions = {}) {
    this.budgetRatio = numberIn("RetryBudget", "budgetRatio", options.budgetRatio, 0.2, 0, 1);
    this.minRetries = integerIn(
      "RetryBudget",
      "minRetries",
      options.minRetries,
      3,
      0,
      Number.MAX_SAFE_INTEGER,
    );
    this.windowMs = integerIn(
      "RetryBudget",
      "windowMs",
      options.windowMs,
      10_000,
      BUCKETS,
      Number.MAX_SAFE_INTEGER,
    );
    this.#bucketMs = this.windowMs / BUCKETS;
    this.#now = options.now ?? Date.now;
  }

  /** The current bucket, emptied first when it last held an older period. */
  #bucket(): number {
    const epoch = Math.floor(this.#now() / this.#bucketMs);
    const i = epoch % BUCKETS;
    if (this.#epochs[i] !== epoch) {
      this.#epochs[i] = epoch;
      this.#requests[i] = 0;
      this.#retries[i] = 0;
    }
    return i;
  }

  #sums(): { requests: number; retries: number } {
    const oldest = Math.floor(this.#now() / this.#bucketMs) - BUCKETS + 1;
    let requests = 0;
    let retries = 0;
    for (let i = 0; i < BUCKETS; i++) {
      if ((this.#epochs[i] as number) >= oldest) {
        requests += this.#requests[i] as number;
        retries += this.#retries[i] as number;
      }
    }
    return { requests, retries };
  }

  /** Counts a request (an original attempt, not a retry) as started and in flight. */
  requestStarted(): void {
    const i = this.#bucket();
    this.#requests[i] = (this.#requests[i] as number) + 1;
    this.#activeRequests++;
  }

  /** Counts a request as done; ignored when none is in flight. */
  requestFinished(): void {
    if (this.#activeRequests > 0) this.#activeRequests--;
  }

  /** How many more retries the window allows now: max(minRetries, ⌊ratio × requests⌋) − retries, at least 0. */
  allowedRetries(): number {
    const { requests, retries } = this.#sums();
    return this.#allowed(requests, retries);
  }

  #allowed(requests: number, retries: number): number {
    return Math.max(0, Math.max(this.minRetries, Math.floor(this.budgetRatio * requests + 1e-9)) - retries);
  }

  /**
   * Takes one retry from the budget. True means the retry may start and the caller must call
   * {@link retryFinished} when it ends; false means the budget is spent (counted as denied).
   */
  tryAcquireRetry(): boolean {
    if (this.allowedRetries() >= 1) {
      const i = this.#bucket();
      this.#retries[i] = (this.#retries[i] as number) + 1;
      this.#activeRetries++;
      return true;
    }
    this.#denied++;
    return false;
  }

  /** Releases a retry taken with {@link tryAcquireRetry}; ignored when none is in flight. */
  retryFinished(): void {
    if (this.#activeRetries > 0) this.#activeRetries--;
  }

  stats(): RetryBudgetStats {
    const { requests, retries } = this.#sums();
    return {
      activeRequests: this.#activeRequests,
      activeRetries: this.#activeRetries,
      requestsInWindow: requests,
      retriesInWindow: retries,
      allowedRetries: this.#allowed(requests, retries),
      denied: this.#denied,
    };
  }
}
