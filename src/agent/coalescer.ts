/**
 * Runs an async task on request, coalesced: at most one run at a time, requests made during a run
 * fold into one more run after it, and runs start at least `minIntervalMs` apart. The agent's
 * heartbeat goes through one, so that a burst of urgent changes (a promotion, failing probes) reaches
 * the controller within milliseconds without ever flooding it.
 */

export interface CoalescerOptions {
  /** Least time between the starts of two runs. Default 100 ms (at most 10 runs a second). */
  readonly minIntervalMs?: number;
  readonly now?: () => number;
  readonly setTimer?: (fn: () => void, ms: number) => unknown;
  readonly clearTimer?: (timer: unknown) => void;
}

export class Coalescer {
  #task: () => Promise<void>;
  #minIntervalMs: number;
  #now: () => number;
  #setTimer: (fn: () => void, ms: number) => unknown;
  #clearTimer: (timer: unknown) => void;
  #running: Promise<void> | undefined;
  #pending = false;
  #timer: unknown;
  #lastStart = Number.NEGATIVE_INFINITY;
  #closed = false;
  #runs = 0;

  /** Coalesces requests to run `task`; a task that throws counts as a finished run. */
  constructor(task: () => Promise<void>, options: CoalescerOptions = {}) {
    this.#task = task;
    this.#minIntervalMs = options.minIntervalMs ?? 100;
    this.#now = options.now ?? Date.now;
    this.#setTimer = options.setTimer ?? ((fn, ms) => setTimeout(fn, ms));
    this.#clearTimer = options.clearTimer ?? ((t) => clearTimeout(t as NodeJS.Timeout));
  }

  /** How many runs have started. */
  get runs(): number {
    return this.#runs;
  }

  /** Asks for a run as soon as the rules allow; no-op when one is already due. */
  request(): void {
    if (this.#closed) return;
    if (this.#running) {
      this.#pending = true;
      return;
    }
    if (this.#timer !== undefined) return;
    const waitMs = this.#lastStart + this.#minIntervalMs - this.#now();
    if (waitMs > 0) {
      this.#timer = this.#setTimer(() => {
        this.#timer = undefined;
        this.#run();
      }, waitMs);
      return;
    }
    this.#run();
  }

  #run(): void {
    if (this.#closed) return;
    this.#pending = false;
    this.#lastStart = this.#now();
    this.#runs++;
    this.#running = this.#task()
      .catch(() => {})
      .finally(() => {
        this.#running = undefined;
        if (this.#pending) this.request();
      });
  }

  /** Resolves once no run is in flight. */
  async idle(): Promise<void> {
    while (this.#running) await this.#running;
  }

  /** Drops what is scheduled; a run in flight finishes (await `idle()`). */
  close(): void {
    this.#closed = true;
    this.#pending = false;
    if (this.#timer !== undefined) this.#clearTimer(this.#timer);
    this.#timer = undefined;
  }
}
