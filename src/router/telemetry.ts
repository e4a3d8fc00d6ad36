/**
 * Per-request telemetry of a router: aggregated into windows (10 s by default) per service, route,
 * cell, region served, version and status, with latency percentiles, plus per-tenant request and
 * error counts; each closed window is shipped to the controller (`POST /v1/telemetry`). The same
 * requests feed Prometheus metrics (prom-client) and, when anyone subscribes, the
 * `ringfence:router:request` diagnostics channel. Recording is O(1) and allocation-light.
 */
import { randomBytes } from "node:crypto";
import { channel } from "node:diagnostics_channel";
import * as hdr from "hdr-histogram-js";
import { Gauge, Registry } from "prom-client";
import type { TelemetryRow, TelemetryWindow, TenantRow } from "../world/contracts.js";
import { CappedMap, type Tier } from "./capped-map.js";
import {
  type CounterSeries,
  type HistogramSeries,
  ScrapedCounter,
  ScrapedHistogram,
} from "./scraped-metrics.js";

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

/** What the caps folded away: the route of overflow rows, and every name of last-resort rows. */
export const OVERFLOW = "(overflow)";

/** The tenant of the rows that hold the requests of tenants the cap folded away. */
export const OTHER_TENANT = "(other)";

/** Caps used when `TelemetryOptions` sets none: the controller's limits for one window. */
export const TELEMETRY_DEFAULTS = { maxRows: 5_000, maxTenantRows: 50_000, maxSeries: 5_000 } as const;

/** The smallest cap accepted: enough for the last-resort entries and some room to fold into. */
export const MIN_CAP = 20;

/** What a row (and its Prometheus series) is keyed by. */
type RowLabels = Pick<TelemetryRow, "service" | "route" | "cell" | "regionServed" | "version" | "status">;

/** Last-resort rows (and series) there can be: one per status class, 0xx to 9xx. */
const STATUS_CLASSES = 10;

/** The status a last-resort row reports: 500 for every 5xx status. */
const statusClass = (status: number): number =>
  Math.min(STATUS_CLASSES - 1, Math.max(0, Math.floor(status / 100))) * 100;

/** A row's own key; two rows with the same labels are the same row. */
const rowKey = (x: RowLabels): string =>
  `${x.service}\u0000${x.route}\u0000${x.cell}\u0000${x.regionServed}\u0000${x.version}\u0000${x.status}`;

/** The key of `rowLabels(x, tier)`, written out so that a folded request allocates only the string. */
function foldedRowKey(x: RowLabels, tier: 1 | 2): string {
  return tier === 1
    ? `${x.service}\u0000${OVERFLOW}\u0000${x.cell}\u0000${x.regionServed}\u0000${x.version}\u0000${x.status}`
    : `${OVERFLOW}\u0000${OVERFLOW}\u0000${OVERFLOW}\u0000${OVERFLOW}\u0000${OVERFLOW}\u0000${statusClass(x.status)}`;
}

function rowLabels(x: RowLabels, tier: Tier): RowLabels {
  if (tier === 2) {
    const o = OVERFLOW;
    return { service: o, route: o, cell: o, regionServed: o, version: o, status: statusClass(x.status) };
  }
  return {
    service: x.service,
    route: tier === 1 ? OVERFLOW : x.route,
    cell: x.cell,
    regionServed: x.regionServed,
    version: x.version,
    status: x.status,
  };
}

const tenantKey = (r: RequestRecord): string => `${r.tenant}\u0000${r.service}\u0000${r.route}`;

/** Fold keys have one more separator than `tenantKey`, so no tenant's key can equal one. */
const foldedTenantKey = (r: RequestRecord, tier: 1 | 2): string =>
  tier === 1
    ? `${OTHER_TENANT}\u0000${r.cell}\u0000${r.service}\u0000${r.route}`
    : `${OTHER_TENANT}\u0000${OVERFLOW}\u0000${OVERFLOW}\u0000${OVERFLOW}`;

function tenantLabels(r: RequestRecord, tier: Tier): Omit<TenantRow, "requests" | "errors"> {
  if (tier === 2) return { tenant: OTHER_TENANT, cell: OVERFLOW, service: OVERFLOW, route: OVERFLOW };
  return { tenant: tier === 1 ? OTHER_TENANT : r.tenant, cell: r.cell, service: r.service, route: r.route };
}

interface Row {
  readonly labels: RowLabels;
  requests: number;
  retries: number;
  sum: number;
  max: number;
  readonly histogram: hdr.Histogram;
  /** The Prometheus series of this row, looked up once rather than per request. */
  readonly counter: CounterSeries;
  readonly duration: HistogramSeries;
}

interface Tenant {
  readonly labels: Omit<TenantRow, "requests" | "errors">;
  requests: number;
  errors: number;
}

/** The Prometheus series of a row outlive its window: they are cumulative. */
interface Series {
  readonly counter: CounterSeries;
  readonly duration: HistogramSeries;
}

export interface TelemetryOptions {
  readonly router: string;
  readonly windowMs?: number;
  /** Most rows in one window: 5,000 by default (the controller's limit), at least 20. */
  readonly maxRows?: number;
  /** Most tenant rows in one window: 50,000 by default (the controller's limit), at least 20. */
  readonly maxTenantRows?: number;
  /**
   * Most Prometheus series of `ringfence_router_requests_total` over the process's life (not per
   * window): 5,000 by default, at least 20.
   */
  readonly maxSeries?: number;
  /** Ships a closed window; failures are retried with the next window (up to 6 kept). */
  readonly ship?: (window: TelemetryWindow) => Promise<void>;
  readonly now?: () => number;
}

function cap(options: TelemetryOptions, field: keyof typeof TELEMETRY_DEFAULTS): number {
  const value = options[field] ?? TELEMETRY_DEFAULTS[field];
  if (!Number.isSafeInteger(value) || value < MIN_CAP) {
    const fix = `the default is ${TELEMETRY_DEFAULTS[field]}`;
    throw new RangeError(
      `TelemetryOptions.${field} must be an integer of at least ${MIN_CAP} (got ${value}); ${fix}`,
    );
  }
  return value;
}

/**
 * Bounded windows: a window never holds more than `maxRows` rows nor `maxTenantRows` tenant rows, so
 * the controller never refuses one for its size. A request whose row is not in the window yet gets
 * its own row while the window holds fewer than `maxRows - 10 - ceil(maxRows / 10)` rows; past that
 * it is folded into the overflow row of its service, cell, region served, version and status (route
 * `(overflow)`), added while the window holds fewer than `maxRows - 10`; past that, into one of at
 * most 10 last-resort rows, one per status class (every name `(overflow)`, status 0, 100, ..., 900).
 * Tenants fold the same way into tenant `(other)` per cell, service and route, and last into one
 * row where every name but the tenant is `(overflow)`. Each request still counts once, so the sum of
 * requests over rows (and over tenant rows) is the number of requests; the window reports how many
 * were folded (`overflowRequests`, `overflowTenantRequests`). The Prometheus series of
 * `ringfence_router_requests_total` are capped the same way at `maxSeries`, over the process's life
 * rather than per window: overflowed series carry route `(overflow)` too.
 *
 * Identity: each window has a `windowId` (router, window start, sequence number and a random
 * per-instance part, so a restarted router never reuses one); the controller stores a window once
 * per router and id, so shipping it again after a lost answer does not count it twice.
 */
export class Telemetry {
  readonly registry = new Registry();
  #options: TelemetryOptions;
  #rows: CappedMap<RequestRecord, Row>;
  #tenants: CappedMap<RequestRecord, Tenant>;
  #windowStart: number;
  /** Random per instance: with the sequence number, no two windows of any router share an id. */
  readonly #instance = randomBytes(8).toString("hex");
  #sequence = 0;
  #pending: TelemetryWindow[] = [];
  #timer: NodeJS.Timeout | undefined;
  #requests: ScrapedCounter;
  #duration: ScrapedHistogram;
  #series: CappedMap<RowLabels, Series>;
  #inFlight: () => Iterable<readonly [string, number]> = () => [];
  readonly tableStale: Gauge;
  readonly ejected: Gauge;

  constructor(options: TelemetryOptions) {
    this.#options = options;
    this.#rows = new CappedMap<RequestRecord, Row>(
      cap(options, "maxRows"),
      STATUS_CLASSES,
      foldedRowKey,
      (r, tier, key) => this.#newRow(r, tier, key),
    );
    this.#tenants = new CappedMap(cap(options, "maxTenantRows"), 1, foldedTenantKey, (r, tier) => ({
      labels: tenantLabels(r, tier),
      requests: 0,
      errors: 0,
    }));
    this.#series = new CappedMap(cap(options, "maxSeries"), STATUS_CLASSES, foldedRowKey, (labels, tier) =>
      this.#newSeries(rowLabels(labels, tier)),
    );
    this.#windowStart = this.#now();
    this.#requests = new ScrapedCounter(
      this.registry,
      "ringfence_router_requests_total",
      "Requests answered by the router",
    );
    this.#duration = new ScrapedHistogram(
      this.registry,
      "ringfence_router_request_duration_seconds",
      "Time from the request's arrival to its answer",
      [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    );
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

  #newSeries(labels: RowLabels): Series {
    return {
      counter: this.#requests.series({
        service: labels.service,
        route: labels.route,
        cell: labels.cell,
        region_served: labels.regionServed,
        status: String(labels.status),
      }),
      duration: this.#duration.series({ service: labels.service, route: labels.route }),
    };
  }

  #newRow(r: RequestRecord, tier: Tier, key: string): Row {
    const labels = rowLabels(r, tier);
    return {
      labels,
      requests: 0,
      retries: 0,
      sum: 0,
      max: 0,
      histogram: hdr.build({
        lowestDiscernibleValue: 1,
        highestTrackableValue: 3_600_000,
        numberOfSignificantValueDigits: 2,
      }),
      // The row's key is its labels' key, so its series' own key too.
      ...this.#series.get(labels, key),
    };
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

  /** Adds one finished request to the window, to Prometheus and to the diagnostics channel. */
  record(r: RequestRecord): void {
    const row = this.#rows.get(r, rowKey(r));
    const micros = Math.max(1, Math.round(r.latencyMs * 1000));
    row.requests++;
    row.retries += r.retries;
    row.sum += r.latencyMs;
    if (r.latencyMs > row.max) row.max = r.latencyMs;
    row.histogram.recordValue(micros);
    const tenant = this.#tenants.get(r, tenantKey(r));
    tenant.requests++;
    if (r.status >= 500) tenant.errors++;
    row.counter.value++;
    row.duration.observe(r.latencyMs / 1000);
    if (requestChannel.hasSubscribers) requestChannel.publish(r);
  }

  /** Closes the current window and returns it (without shipping). */
  closeWindow(): TelemetryWindow {
    const now = this.#now();
    const router = this.#options.router;
    const window: TelemetryWindow = {
      router,
      windowId: `${router}:${this.#windowStart}:${this.#sequence++}:${this.#instance}`,
      windowStart: new Date(this.#windowStart).toISOString(),
      // The controller refuses an empty duration (two windows closed within a millisecond).
      windowMs: Math.max(1, now - this.#windowStart),
      rows: Array.from(this.#rows.values(), (row) => ({
        ...row.labels,
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
      tenants: Array.from(this.#tenants.values(), (t) => ({
        ...t.labels,
        requests: t.requests,
        errors: t.errors,
      })),
      overflowRequests: this.#rows.folded,
      overflowTenantRequests: this.#tenants.folded,
    };
    this.#rows.clear();
    this.#tenants.clear();
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
