/**
 * Router telemetry in the control database: each router's windows as they arrive
 * (`POST /v1/telemetry`), kept for 24 hours, and read back aggregated over a time range for the
 * status page and SLOs (`GET /v1/telemetry`, `GET /v1/telemetry/tenants`).
 *
 * Aggregation over windows and routers sums requests, retries and latency sums, takes the maximum
 * of the maxima, and averages each percentile weighted by the requests of its window. The weighted
 * average is not the true percentile of the combined requests (that would need the histograms): it
 * is exact when every window saw the same latency distribution and otherwise an estimate that leans
 * towards the busiest windows; it never exceeds the largest window percentile. SLOs that need exact
 * tail latency should count requests over a threshold instead.
 */
import type { TelemetryRow, TelemetryWindow, TenantRow } from "../world/contracts.js";
import type { ControlDatabase } from "./database.js";

/** How long telemetry is kept. */
export const TELEMETRY_RETENTION_MS = 24 * 60 * 60 * 1000;

/** How often ingestion also deletes what is older than the retention. */
export const TELEMETRY_PRUNE_EVERY_MS = 60 * 1000;

/** Most aggregated rows one read returns; more are reported as `truncated`. */
export const TELEMETRY_MAX_ROWS = 10_000;

/** A time range `[sinceMs, untilMs)` of window starts, optionally narrowed to a service and a cell. */
export interface TelemetryQuery {
  readonly sinceMs: number;
  /** Exclusive; `Infinity` for an open range. */
  readonly untilMs: number;
  readonly service?: string | undefined;
  readonly cell?: string | undefined;
}

export interface TenantQuery extends TelemetryQuery {
  readonly tenant?: string | undefined;
  /** Most tenants returned, the ones with most errors (then most requests) first. */
  readonly limit: number;
}

interface AggregateRow {
  service: string;
  route: string;
  cell: string;
  region_served: string;
  version: string;
  status: number;
  requests: string;
  retries: string;
  p50: number;
  p95: number;
  p99: number;
  max: number;
  sum: number;
}

/** The exclusive end of a range, null when it is open. */
const until = (query: TelemetryQuery): Date | null =>
  Number.isFinite(query.untilMs) ? new Date(query.untilMs) : null;

/** Percentiles are weighted averages: three decimals are all the precision they carry. */
const ms = (value: number): number => Math.round(value * 1000) / 1000;

export class TelemetryStore {
  readonly #db: ControlDatabase;
  readonly #clock: () => number;
  #lastPruneMs = Number.NEGATIVE_INFINITY;

  constructor(db: ControlDatabase, clock: () => number) {
    this.#db = db;
    this.#clock = clock;
  }

  /**
   * Stores one router window once: a window whose (router, windowId) is already stored is ignored,
   * and so is a window that started before the retention. At most once a minute also deletes
   * everything older than the retention, in the same transaction. Window ids are pruned with their
   * rows, when their window start leaves the retention: a window shipped again after that is too
   * old to be stored, so it is still never counted twice. Returns whether the window was stored.
   */
  async record(window: TelemetryWindow): Promise<boolean> {
    const now = this.#clock();
    const start = Date.parse(window.windowStart);
    const prune = now - this.#lastPruneMs >= TELEMETRY_PRUNE_EVERY_MS;
    if (prune) this.#lastPruneMs = now;
    const fresh = start >= now - TELEMETRY_RETENTION_MS;
    if (!fresh && !prune) return false;
    return await this.#db.transaction(async ({ client }) => {
      // A second ship of the same window waits here on the first one's row until it commits.
      const keep =
        fresh &&
        (
          await client.query(
            `INSERT INTO telemetry_windows (router, window_id, window_start) VALUES ($1, $2, $3)
             ON CONFLICT DO NOTHING`,
            [window.router, window.windowId, new Date(start)],
          )
        ).rowCount === 1;
      if (keep && window.rows.length > 0) {
        await client.query(
          `INSERT INTO telemetry (window_start, window_ms, router, service, route, cell, region_served,
             version, status, requests, retries, p50, p95, p99, max, sum_ms)
           SELECT $1, $2, $3, r.service, r.route, r.cell, r.region_served, r.version, r.status, r.requests,
             r.retries, r.p50, r.p95, r.p99, r.max, r.sum_ms
           FROM jsonb_to_recordset($4::jsonb) AS r(service text, route text, cell text, region_served text,
             version text, status int, requests bigint, retries bigint, p50 float8, p95 float8, p99 float8,
             max float8, sum_ms float8)`,
          [
            new Date(start),
            window.windowMs,
            window.router,
            JSON.stringify(
              window.rows.map((r) => ({
                service: r.service,
                route: r.route,
                cell: r.cell,
                region_served: r.regionServed,
                version: r.version,
                status: r.status,
                requests: r.requests,
                retries: r.retries,
                p50: r.latencyMs.p50,
                p95: r.latencyMs.p95,
                p99: r.latencyMs.p99,
                max: r.latencyMs.max,
                sum_ms: r.latencyMs.sum,
              })),
            ),
          ],
        );
      }
      if (keep && window.tenants.length > 0) {
        await client.query(
          `INSERT INTO tenant_telemetry (window_start, router, tenant, cell, service, route, requests, errors)
           SELECT $1, $2, t.tenant, t.cell, t.service, t.route, t.requests, t.errors
           FROM jsonb_to_recordset($3::jsonb) AS t(tenant text, cell text, service text, route text,
             requests bigint, errors bigint)`,
          [
            new Date(start),
            window.router,
            JSON.stringify(
              window.tenants.map((t) => ({
                tenant: t.tenant,
                cell: t.cell,
                service: t.service,
                route: t.route,
                requests: t.requests,
                errors: t.errors,
              })),
            ),
          ],
        );
      }
      if (prune) {
        const cutoff = new Date(now - TELEMETRY_RETENTION_MS);
        await client.query("DELETE FROM telemetry WHERE window_start < $1", [cutoff]);
        await client.query("DELETE FROM tenant_telemetry WHERE window_start < $1", [cutoff]);
        await client.query("DELETE FROM telemetry_windows WHERE window_start < $1", [cutoff]);
      }
      return keep;
    });
  }

  /**
   * Telemetry rows in `query`'s range summed over routers and windows, one per (service, route,
   * cell, region served, version, status), in that order; at most `TELEMETRY_MAX_ROWS`.
   */
  async rows(query: TelemetryQuery): Promise<{ rows: TelemetryRow[]; truncated: boolean }> {
    const found = await this.#db.query<AggregateRow>(
      `SELECT service, route, cell, region_served, version, status,
         sum(requests) AS requests, sum(retries) AS retries,
         coalesce(sum(p50 * requests) / nullif(sum(requests), 0), avg(p50)) AS p50,
         coalesce(sum(p95 * requests) / nullif(sum(requests), 0), avg(p95)) AS p95,
         coalesce(sum(p99 * requests) / nullif(sum(requests), 0), avg(p99)) AS p99,
         max(max) AS max, sum(sum_ms) AS sum
       FROM telemetry
       WHERE window_start >= $1 AND ($2::timestamptz IS NULL OR window_start < $2)
         AND ($3::text IS NULL OR service = $3) AND ($4::text IS NULL OR cell = $4)
       GROUP BY service, route, cell, region_served, version, status
       ORDER BY service, route, cell, region_served, version, status
       LIMIT $5`,
      [
        new Date(query.sinceMs),
        until(query),
        query.service ?? null,
        query.cell ?? null,
        TELEMETRY_MAX_ROWS + 1,
      ],
    );
    const rows = found.slice(0, TELEMETRY_MAX_ROWS).map((r) => ({
      service: r.service,
      route: r.route,
      cell: r.cell,
      regionServed: r.region_served,
      version: r.version,
      status: r.status,
      requests: Number(r.requests),
      retries: Number(r.retries),
      latencyMs: { p50: ms(r.p50), p95: ms(r.p95), p99: ms(r.p99), max: r.max, sum: ms(r.sum) },
    }));
    return { rows, truncated: found.length > TELEMETRY_MAX_ROWS };
  }

  /** Per-tenant counts in `query`'s range summed over routers and windows, most errors first. */
  async tenants(query: TenantQuery): Promise<TenantRow[]> {
    const found = await this.#db.query<{
      tenant: string;
      cell: string;
      service: string;
      route: string;
      requests: string;
      errors: string;
    }>(
      `SELECT tenant, cell, service, route, sum(requests) AS requests, sum(errors) AS errors
       FROM tenant_telemetry
       WHERE window_start >= $1 AND ($2::timestamptz IS NULL OR window_start < $2)
         AND ($3::text IS NULL OR service = $3) AND ($4::text IS NULL OR cell = $4)
         AND ($5::text IS NULL OR tenant = $5)
       GROUP BY tenant, cell, service, route
       ORDER BY sum(errors) DESC, sum(requests) DESC, tenant, cell, service, route
       LIMIT $6`,
      [
        new Date(query.sinceMs),
        until(query),
        query.service ?? null,
        query.cell ?? null,
        query.tenant ?? null,
        query.limit,
      ],
    );
    return found.map((t) => ({
      tenant: t.tenant,
      cell: t.cell,
      service: t.service,
      route: t.route,
      requests: Number(t.requests),
      errors: Number(t.errors),
    }));
  }
}
