/**
 * The arrival schedule of an open-loop load run: when each request is due, as offsets in
 * milliseconds from the start of the run. Pure and deterministic for a seed, so the number of
 * requests a run starts depends only on the rate and the duration, never on how fast the service
 * answers (no coordinated omission).
 */
import { Random } from "../lib/random.js";

/**
 * How arrivals are spread: `uniform` spaces them evenly (exactly `rps × duration` requests, the
 * default, so two drills are comparable), `poisson` draws exponential gaps with the same mean (bursts
 * as independent clients make them).
 */
export type ArrivalProcess = "uniform" | "poisson";

export const ARRIVAL_PROCESSES: readonly ArrivalProcess[] = ["uniform", "poisson"];

export interface ScheduleOptions {
  /** Requests per second, > 0. */
  readonly rps: number;
  /** Length of the run in milliseconds; arrivals fall in `[0, durationMs)`. */
  readonly durationMs: number;
  /** Default `uniform`. */
  readonly process?: ArrivalProcess;
  /** Seed of the Poisson gaps. Default 1. */
  readonly seed?: number;
}

/** Yields the due offset (ms from the start) of every arrival, in increasing order. */
export function* arrivalOffsets(options: ScheduleOptions): Generator<number, void, undefined> {
  const { rps, durationMs } = options;
  if (!(rps > 0) || !Number.isFinite(rps)) throw new RangeError(`rps must be a positive number, got ${rps}`);
  if (!(durationMs >= 0) || !Number.isFinite(durationMs)) {
    throw new RangeError(`durationMs must be a non-negative number, got ${durationMs}`);
  }
  const gapMs = 1000 / rps;
  if ((options.process ?? "uniform") === "uniform") {
    // k × gap rather than a running sum, so rounding errors never accumulate into an extra request.
    for (let k = 0; k * gapMs < durationMs; k++) yield k * gapMs;
    return;
  }
  const random = new Random(options.seed ?? 1);
  for (let t = random.exponential(gapMs); t < durationMs; t += random.exponential(gapMs)) yield t;
}
