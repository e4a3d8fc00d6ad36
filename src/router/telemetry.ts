/**
 * Per-request telemetry of a router: aggregated into windows (10 s by default) per service, route,
 * cell, region served, version and status, with latency percentiles, plus per-tenant request and
 * error counts; each closed window is shipped to the controller (`POST /v1/telemetry`). The same
 * requests feed Prometheus metrics (prom-client) and, when anyone subscribes, the
 * `ringfence:router:request` diagnostics channel. Recording is O(1) and allocation-light.
 */
import { channel } from "node:diagnostics_channel";
import * as hdr from "hdr-histogram-js";
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import type { TelemetryRow, TelemetryWindow, TenantRow } from "../world/contracts.js";

/** What one finished request reports. */
export interface RequestRecord {
  readonly tenant: string;
  readonly cell: string;
  readonly regionServed: string;
  readonly service: string;
  readonly version: string;
  readonly route: string;
  readonly status: number;
  readonly latencyMs: number;
  readonly retries: number;
}

/** Published on `ringfence:router:request` for every finished request, when subscribed. */
export const requestChannel = channel("ringfence:router:request");

interface Row {
  readonly key: TelemetryRow;
  requests: number;
  retries: number;
  sum: number;
  max: number;
  histogram: hdr.Histogram;
  /** The Prometheus series of this row, looked up once rather than per request. */
  readonly counter: { inc(): void };
  readonly duration: { observe(value: number): void };
}

/** The Prometheus series of a row outlive its window: they are cumulative. */
interface Series {
  readonly counter: { inc(): void };
  readonly duration: { observe(value: number): void };
}

export interface TelemetryOptions {
  readonly router: string;
  readonly windowMs?: number;
  /** Ships a closed window; failures are retried with the next window (up to 6 kept). */
  readonly ship?: (window: TelemetryWindow) => Promise<void>;
  readonly now?: () => number;
}

export class Telemetry {
  readonly registry = new Registry();
  #options: TelemetryOptions;
  #rows = new Map<string, Row>();
  #tenants = new Map<string, { row: TenantRow; requests: number; errors: number }>();
  #windowStart: number;
  #pending: TelemetryWindow[] = [];
  #timer: NodeJS.Timeout | undefined;
  #requests: Counter<"service" | "route" | "cell" | "region_served" | "status">;
  #duration: Histogram<"service" | "route">;
  #series = new Map<string, Series>();
  #inFlight: () => Iterable<readonly [string, number]> = () => [];
  readonly tableStale: Gauge;
  readonly ejected: Gauge;

  constructor(options: TelemetryOptions) {
    this.#options = options;
    this.#windowStart = this.#now();
    this.#requests = new Counter({
      name: "ringfence_router_requests_total",
      help: "Requests answered by the router",
      labelNames: ["service", "route", "cell", "region_served", "status"],
      registers: [this.registry],
    });
    this.#duration = new Histogram({
      name: "ringfence_router_request_duration_seconds",
      help: "Time from the request's arrival to its answer",
      labelNames: ["service", "route"],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [this.registry],
    });
    const inFlight = (): Iterable<readonly [string, number]> => this.#inFlight();
    new Gauge({
      name: "ringfence_router_in_flight",
      help: "Requests in flight per cell",
      labelNames: ["cell"],
      registers: [this.registry],
      // Read at scrape time from the shedder's counts: nothing to do per request.
      collect() {
        this.reset();
        for (const [cell, count] of inFlight()) this.set({ cell }, count);
      },
    });
    this.tableStale = new Gauge({
      name: "ringfence_router_table_stale",
      help: "1 while serving from the last-known-good routing table",
      registers: [this.registry],
    });
    this.ejected = new Gauge({
      name: "ringfence_router_ejected_upstreams",
      help: "Upstreams currently ejected",
      registers: [this.registry],
    });
  }

  /** Where the in-flight gauge reads its per-cell counts at scrape time. */
  setInFlightSource(source: () => Iterable<readonly [string, number]>): void {
    this.#inFlight = source;
  }

  #seriesOf(r: RequestRecord, key: string): Series {
    let series = this.#series.get(key);
    if (!series) {
      series = {
        counter: this.#requests.labels({
          service: r.service,
          route: r.route,
          cell: r.cell,
          region_served: r.regionServed,
          status: String(r.status),
        }),
        duration: this.#duration.labels({ service: r.service, route: r.route }),
      };
      this.#series.set(key, series);
    }
    return series;
  }

  #now(): number {
    return (this.#options.now ?? Date.now)();
  }

  /** Starts closing and shipping windows on a timer. */
  start(): void {
    const tick = () => {
      this.#timer = setTimeout(() => {
        void this.flush().finally(tick);
      }, this.#options.windowMs ?? 10_000);
      this.#timer.unref();
    };
    tick();
  }

  stop(): void {
    if (this.#timer) clearTimeout(this.#timer);
  }

  record(r: RequestRecord): void {
    const key = `${r.service}\u0000${r.route}\u0000${r.cell}\u0000${r.regionServed}\u0000${r.version}\u0000${r.status}`;
    let row = this.#rows.get(key);
    if (!row) {
      row = {
        key: {
          service: r.service,
          route: r.route,
          cell: r.cell,
          regionServed: r.regionServed,
          version: r.version,
          status: r.status,
          requests: 0,
          retries: 0,
          latencyMs: { p50: 0, p95: 0, p99: 0, max: 0, sum: 0 },
        },
        requests: 0,
        retries: 0,
        sum: 0,
        max: 0,
        histogram: hdr.build({
          lowestDiscernibleValue: 1,
          highestTrackableValue: 3_600_000,
          numberOfSignificantValueDigits: 2,
        }),
        ...this.#seriesOf(r, key),
      };
      this.#rows.set(key, row);
    }
    const micros = Math.max(1, Math.round(r.latencyMs * 1000));
    row.requests++;
    row.retries += r.retries;
    row.sum += r.latencyMs;
    if (r.latencyMs > row.max) row.max = r.latencyMs;
    row.histogram.recordValue(micros);
    const tenantKey = `${r.tenant}\u0000${r.service}\u0000${r.route}`;
    let t = this.#tenants.get(tenantKey);
    if (!t) {
      t = {
        row: { tenant: r.tenant, cell: r.cell, service: r.service, route: r.route, requests: 0, errors: 0 },
        requests: 0,
        errors: 0,
      };
      this.#tenants.set(tenantKey, t);
    }
    t.requests++;
    if (r.status >= 500) t.errors++;
    row.counter.inc();
    row.duration.observe(r.latencyMs / 1000);
    if (requestChannel.hasSubscribers) requestChannel.publish(r);
  }

  /** Closes the current window and returns it (without shipping). */
  closeWindow(): TelemetryWindow {
    const now = this.#now();
    const window: TelemetryWindow = {
      router: this.#options.router,
      windowStart: new Date(this.#windowStart).toISOString(),
      windowMs: now - this.#windowStart,
      rows: [...this.#rows.values()].map((row) => ({
        ...row.key,
        requests: row.requests,
        retries: row.retries,
        latencyMs: {
          p50: row.histogram.getValueAtPercentile(50) / 1000,
          p95: row.histogram.getValueAtPercentile(95) / 1000,
          p99: row.histogram.getValueAtPercentile(99) / 1000,
          max: row.max,
          sum: row.sum,
        },
      })),
      tenants: [...this.#tenants.values()].map((t) => ({ ...t.row, requests: t.requests, errors: t.errors })),
    };
    this.#rows = new Map();
    this.#tenants = new Map();
    this.#windowStart = now;
    return window;
  }

  /** Closes the window and ships it with any earlier ones that failed to ship. */
  async flush(): Promise<void> {
    const window = this.closeWindow();
    if (window.rows.length > 0) this.#pending.push(window);
    if (this.#pending.length > 6) this.#pending.splice(0, this.#pending.length - 6);
    const ship = this.#options.ship;
    if (!ship) return;
    while (this.#pending.length > 0) {
      const next = this.#pending[0] as TelemetryWindow;
      try {
        await ship(next);
        this.#pending.shift();
      } catch {
        return; // keep it for the next window
      }
    }
  }

  async metrics(): Promise<string> {
    return await this.registry.metrics();
  }
}
