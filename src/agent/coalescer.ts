/**
 * Runs an async task on request, coalesced: at most one run at a time, requests made during a run
 * fold into one more run after it, and runs start at least `minIntervalMs` apart. The agent's
 * heartbeat goes through one, so that a burst of urgent changes (a promotion, failing probes) reaches
 * the controller within milliseconds without ever flooding it. An urgent request (something the
 * controller is waiting on, and rare: a new desired state applied, a promotion) needs only
 * `urgentIntervalMs` since the last start.
 */

export interface CoalescerOptions {
  /** Least time between the starts of two runs. Default 100 ms (at most 10 runs a second). */
  readonly minIntervalMs?: number;
  /** Least time between the start of a run and that of an urgent one. Default `minIntervalMs`. */
  readonly urgentIntervalMs?: number;
  readonly now?: () => number;
  readonly setTimer?: (fn: () => void, ms: number) => unknown;
  readonly clearTimer?: (timer: unknown) => void;
}

export class Coalescer {
  #task: () => Promise<void>;
  #minIntervalMs: number;
  #urgentIntervalMs: number;
  #now: () => number;
  #setTimer: (fn: () => void, ms: number) => unknown;
  #clearTimer: (timer: unknown) => void;
  #running: Promise<void> | undefined;
  #pending = false;
  #pendingUrgent = false;
  #timer: unknown;
  /** When the scheduled run is due. */
  #dueAt = Number.POSITIVE_INFINITY;
  #lastStart = Number.NEGATIVE_INFINITY;
  #closed = false;
  #runs = 0;

  /** Coalesces requests to run `task`; a task that throws counts as a finished run. */
  constructor(task: () => Promise<void>, options: CoalescerOptions = {}) {
    this.#task = task;
    this.#minIntervalMs = options.minIntervalMs ?? 100;
    this.#urgentIntervalMs = Math.min(options.urgentIntervalMs ?? this.#minIntervalMs, this.#minIntervalMs);
    this.#now = options.now ?? Date.now;
    this.#setTimer = options.setTimer ?? ((fn, ms) => setTimeout(fn, ms));
    this.#clearTimer = options.clearTimer ?? ((t) => clearTimeout(t as NodeJS.Timeout));
  }

  /** How many runs have started. */
  get runs(): number {
    return this.#runs;
  }

  /**
   * Asks for a run as soon as the rules allow (`urgent`: after the shorter urgent interval); no-op
   * when one is already due as soon.
   */
  request(urgent = false): void {
    if (this.#closed) return;
    if (this.#running) {
      this.#pending = true;
      this.#pendingUrgent ||= urgent;
      return;
    }
    const now = this.#now();
    const dueAt = this.#lastStart + (urgent ? this.#urgentIntervalMs : this.#minIntervalMs);
    if (this.#timer !== undefined) {
      if (dueAt >= this.#dueAt) return;
      this.#clearTimer(this.#timer);
      this.#timer = undefined;
    }
    if (dueAt > now) {
      this.#dueAt = dueAt;
      this.#timer = this.#setTimer(() => {
        this.#timer = undefined;
        this.#run();
      }, dueAt - now);
      return;
    }
    this.#run();
  }

  #run(): void {
    if (this.#closed) return;
    this.#dueAt = Number.POSITIVE_INFINITY;
    this.#pending = false;
    this.#lastStart = this.#now();
    this.#runs++;
    this.#running = this.#task()
      .catch(() => {})
      .finally(() => {
        this.#running = undefined;
        const urgent = this.#pendingUrgent;
        this.#pendingUrgent = false;
        if (this.#pending) this.request(urgent);
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
