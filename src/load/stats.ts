/**
 * What a load run measured: requests, errors by class and latency (HDR histograms, microsecond
 * resolution) overall and per service, cell, router region and operation, plus a one-second window
 * for live progress. Recording is O(1) per request and per group.
 */
import * as hdr from "hdr-histogram-js";

/** The groupings of the summary: `service` (the topology's service owning the route), `cell`,
 * `region` (of the router the request went to) and `operation` (`read` or `write`). */
export const DIMENSIONS = ["service", "cell", "region", "operation"] as const;
export type Dimension = (typeof DIMENSIONS)[number];
export type Labels = Readonly<Record<Dimension, string>>;

/** How one arrival ended. */
export interface Outcome {
  readonly ok: boolean;
  /** Why it failed: `http-<status>`, `timeout`, `connection` or `client-overload`. */
  readonly errorClass?: string;
  /** From the due time to the end; absent for arrivals dropped by the in-flight cap (never started). */
  readonly latencyMs?: number;
}

export interface LatencySummary {
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly max: number;
}

export interface GroupSummary {
  readonly requests: number;
  readonly errors: number;
  /** Share of requests that succeeded, in percent; null with no requests. */
  readonly availabilityPct: number | null;
  readonly errorsByClass: Readonly<Record<string, number>>;
  /** Latency in ms of every started request (successes and failures); null when none started. */
  readonly latencyMs: LatencySummary | null;
}

export interface StatsSummary {
  readonly total: GroupSummary;
  readonly byService: Readonly<Record<string, GroupSummary>>;
  readonly byCell: Readonly<Record<string, GroupSummary>>;
  readonly byRegion: Readonly<Record<string, GroupSummary>>;
  readonly byOperation: Readonly<Record<string, GroupSummary>>;
}

/** One second (or any window) of progress. */
export interface WindowSummary {
  readonly requests: number;
  readonly errors: number;
  readonly p50Ms: number | null;
  readonly p99Ms: number | null;
}

function newHistogram(): hdr.Histogram {
  return hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 60_000_000,
    numberOfSignificantValueDigits: 3,
  });
}

const round = (ms: number): number => Math.round(ms * 100) / 100;

class Group {
  requests = 0;
  errors = 0;
  readonly errorsByClass = new Map<string, number>();
  readonly histogram = newHistogram();

  record(outcome: Outcome): void {
    this.requests++;
    if (!outcome.ok) {
      this.errors++;
      const cls = outcome.errorClass ?? "error";
      this.errorsByClass.set(cls, (this.errorsByClass.get(cls) ?? 0) + 1);
    }
    if (outcome.latencyMs !== undefined) {
      this.histogram.recordValue(Math.max(1, Math.round(outcome.latencyMs * 1000)));
    }
  }

  summary(): GroupSummary {
    const h = this.histogram;
    const at = (p: number) => round(h.getValueAtPercentile(p) / 1000);
    return {
      requests: this.requests,
      errors: this.errors,
      availabilityPct:
        this.requests === 0 ? null : Math.round(((this.requests - this.errors) / this.requests) * 1e6) / 1e4,
      errorsByClass: Object.fromEntries([...this.errorsByClass].sort(([a], [b]) => a.localeCompare(b))),
      latencyMs:
        h.totalCount === 0 ? null : { p50: at(50), p90: at(90), p99: at(99), max: round(h.maxValue / 1000) },
    };
  }
}

/** Accumulates outcomes for a whole run and for the current progress window. */
export class LoadStats {
  #total = new Group();
  #groups: Record<Dimension, Map<string, Group>> = {
    service: new Map(),
    cell: new Map(),
    region: new Map(),
    operation: new Map(),
  };
  #window = new Group();

  record(labels: Labels, outcome: Outcome): void {
    this.#total.record(outcome);
    this.#window.record(outcome);
    for (const dimension of DIMENSIONS) {
      const groups = this.#groups[dimension];
      const key = labels[dimension];
      let group = groups.get(key);
      if (!group) {
        group = new Group();
        groups.set(key, group);
      }
      group.record(outcome);
    }
  }

  /** Requests recorded so far. */
  get requests(): number {
    return this.#total.requests;
  }

  /** What the window since the last call saw; starts a new window. */
  takeWindow(): WindowSummary {
    const w = this.#window;
    this.#window = new Group();
    const empty = w.histogram.totalCount === 0;
    return {
      requests: w.requests,
      errors: w.errors,
      p50Ms: empty ? null : round(w.histogram.getValueAtPercentile(50) / 1000),
      p99Ms: empty ? null : round(w.histogram.getValueAtPercentile(99) / 1000),
    };
  }

  summary(): StatsSummary {
    const of = (d: Dimension) =>
      Object.fromEntries(
        [...this.#groups[d]].sort(([a], [b]) => a.localeCompare(b)).map(([k, g]) => [k, g.summary()]),
      );
    return {
      total: this.#total.summary(),
      byService: of("service"),
      byCell: of("cell"),
      byRegion: of("region"),
      byOperation: of("operation"),
    };
  }
}
