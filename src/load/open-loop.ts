/**
 * The open-loop dispatcher: starts one request per arrival of a schedule at its due time, never
 * waiting for earlier answers. When the process falls behind (a blocked event loop, a burst), late
 * arrivals start at once and keep their original due time, so latency measured from `dueAt` includes
 * the queueing a real client would have seen. In-flight requests are capped; an arrival that finds
 * the cap full is handed to `dropped` (counted as a "client overload" error), never silently skipped.
 */
import { setImmediate as yieldToLoop } from "node:timers/promises";

/** Monotonic time, injectable so that the dispatcher can be tested with fake time. */
export interface LoopClock {
  /** Milliseconds on a monotonic clock. */
  now(): number;
  /** Resolves after about `ms` milliseconds. */
  sleep(ms: number): Promise<void>;
}

/** `performance.now()` and `setTimeout`. */
export const systemClock: LoopClock = {
  now: () => performance.now(),
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
};

/** One scheduled request. */
export interface Arrival {
  /** 0, 1, 2, … in schedule order. */
  readonly seq: number;
  /** When it was due, on the loop's clock: latency is measured from here. */
  readonly dueAt: number;
}

export interface OpenLoopOptions {
  /** Due offsets in ms from the start, increasing (see `arrivalOffsets`). */
  readonly offsets: Iterable<number>;
  /** Most requests in flight at once; arrivals beyond it are dropped. Default 2,000. */
  readonly maxInFlight?: number;
  /** Starts the request of an arrival; resolves when it has finished (any outcome). */
  readonly send: (arrival: Arrival) => Promise<void>;
  /** Told about every arrival that found `maxInFlight` requests in flight. */
  readonly dropped: (arrival: Arrival) => void;
  /** Default `systemClock`. */
  readonly clock?: LoopClock;
  /** Stops scheduling new arrivals (requests in flight still finish). */
  readonly signal?: AbortSignal;
}

export interface OpenLoopResult {
  /** Arrivals that came due before the end (or the abort). */
  readonly scheduled: number;
  readonly started: number;
  readonly dropped: number;
  /** How far behind its due time the latest start was, in ms: how much the client itself lagged. */
  readonly maxStartLagMs: number;
}

export const DEFAULT_MAX_IN_FLIGHT = 2_000;

/** Longest single sleep, so that an abort is noticed quickly even at very low rates. */
const MAX_SLEEP_MS = 50;
/** Starts made back to back (catching up) before letting I/O run. */
const BURST = 256;

/** Runs the schedule to its end (or the abort), then waits for every request in flight. */
export async function runOpenLoop(options: OpenLoopOptions): Promise<OpenLoopResult> {
  const clock = options.clock ?? systemClock;
  const maxInFlight = options.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT;
  if (!Number.isInteger(maxInFlight) || maxInFlight < 1) {
    throw new RangeError(`maxInFlight must be a positive integer, got ${maxInFlight}`);
  }
  const pending = new Set<Promise<void>>();
  let failure: { error: unknown } | undefined;
  let scheduled = 0;
  let started = 0;
  let dropped = 0;
  let maxStartLagMs = 0;
  let burst = 0;
  const start = clock.now();
  for (const offset of options.offsets) {
    const dueAt = start + offset;
    for (let wait = dueAt - clock.now(); wait >= 1; wait = dueAt - clock.now()) {
      if (options.signal?.aborted) break;
      await clock.sleep(Math.min(wait, MAX_SLEEP_MS));
      burst = 0;
    }
    if (options.signal?.aborted) break;
    const arrival: Arrival = { seq: scheduled++, dueAt };
    maxStartLagMs = Math.max(maxStartLagMs, clock.now() - dueAt);
    if (pending.size >= maxInFlight) {
      dropped++;
      options.dropped(arrival);
    } else {
      started++;
      const request: Promise<void> = options
        .send(arrival)
        .catch((error: unknown) => {
          failure ??= { error };
        })
        .finally(() => pending.delete(request));
      pending.add(request);
    }
    if (++burst >= BURST) {
      burst = 0;
      await yieldToLoop();
    }
  }
  while (pending.size > 0) await Promise.all([...pending]);
  if (failure) throw failure.error;
  return { scheduled, started, dropped, maxStartLagMs };
}
