/**
 * A counter and a histogram for the router's per-request Prometheus metrics that cost a few
 * additions per request: each series is a plain object the caller keeps, and prom-client's registry
 * reads them at scrape time (they are registered as metrics: `name`, `help`, `type` and `get()`).
 * prom-client's own Counter and Histogram hash and validate their labels on every `inc` and
 * `observe`, which at tens of thousands of requests a second is a measurable share of the router's
 * time. The exposition is the same.
 */
import type { Registry } from "prom-client";

type Labels = Readonly<Record<string, string>>;

interface MetricValue {
  readonly value: number;
  readonly labels: Record<string, string | number>;
  readonly metricName?: string;
}

interface Metric {
  readonly name: string;
  readonly help: string;
  readonly type: "counter" | "histogram";
  readonly aggregator: "sum";
  get(): Promise<{
    name: string;
    help: string;
    type: string;
    aggregator: "sum";
    values: MetricValue[];
  }>;
}

/** One series of a {@link ScrapedCounter}. */
export interface CounterSeries {
  value: number;
}

export class ScrapedCounter implements Metric {
  readonly type = "counter" as const;
  readonly aggregator = "sum" as const;
  readonly #series: { labels: Labels; s: CounterSeries }[] = [];

  constructor(
    registry: Registry,
    readonly name: string,
    readonly help: string,
  ) {
    registry.registerMetric(this as never);
  }

  /** A new series with `labels` (the caller keeps it and adds to its `value`). */
  series(labels: Labels): CounterSeries {
    const s = { value: 0 };
    this.#series.push({ labels, s });
    return s;
  }

  async get() {
    return {
      name: this.name,
      help: this.help,
      type: this.type,
      aggregator: this.aggregator,
      values: this.#series.map(({ labels, s }) => ({ value: s.value, labels: { ...labels } })),
    };
  }
}

/** One series of a {@link ScrapedHistogram}. */
export class HistogramSeries {
  readonly counts: Float64Array;
  sum = 0;
  count = 0;
  readonly #bounds: readonly number[];

  constructor(bounds: readonly number[]) {
    this.#bounds = bounds;
    this.counts = new Float64Array(bounds.length);
  }

  observe(value: number): void {
    const bounds = this.#bounds;
    for (let i = 0; i < bounds.length; i++) {
      if (value <= (bounds[i] as number)) {
        (this.counts[i] as number)++;
        break;
      }
    }
    this.sum += value;
    this.count++;
  }
}

export class ScrapedHistogram implements Metric {
  readonly type = "histogram" as const;
  readonly aggregator = "sum" as const;
  readonly #bounds: readonly number[];
  /** One series per distinct label set: rows with the same labels share it. */
  readonly #series = new Map<string, { labels: Labels; s: HistogramSeries }>();

  constructor(
    registry: Registry,
    readonly name: string,
    readonly help: string,
    bounds: readonly number[],
  ) {
    this.#bounds = [...bounds].sort((a, b) => a - b);
    registry.registerMetric(this as never);
  }

  /** The series with `labels`, created on first use. */
  series(labels: Labels): HistogramSeries {
    const key = JSON.stringify(Object.entries(labels).sort());
    let entry = this.#series.get(key);
    if (!entry) {
      entry = { labels, s: new HistogramSeries(this.#bounds) };
      this.#series.set(key, entry);
    }
    return entry.s;
  }

  async get() {
    const values: MetricValue[] = [];
    const bucket = `${this.name}_bucket`;
    for (const { labels, s } of this.#series.values()) {
      let cumulative = 0;
      for (let i = 0; i < this.#bounds.length; i++) {
        cumulative += s.counts[i] as number;
        values.push({
          value: cumulative,
          labels: { le: this.#bounds[i] as number, ...labels },
          metricName: bucket,
        });
      }
      values.push({ value: s.count, labels: { le: "+Inf", ...labels }, metricName: bucket });
      values.push({ value: s.sum, labels: { ...labels }, metricName: `${this.name}_sum` });
      values.push({ value: s.count, labels: { ...labels }, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }
}
