/**
 * Router telemetry. Routers ship one window at a time (`POST /v1/telemetry`, agent token, 204); the
 * controller keeps 24 hours of them. Shipping is idempotent: a window whose (router, windowId) is
 * already stored is answered 204 and not stored again, so a router may retry one whose answer it
 * lost. Readers get them aggregated over a range of window starts
 * (`GET /v1/telemetry`, per service, route, cell, region served, version and status;
 * `GET /v1/telemetry/tenants`, per tenant, most errors first): requests, retries and latency sums
 * are summed, `max` is the largest, and p50/p95/p99 are averages weighted by requests (an estimate,
 * see `telemetry-store.ts`).
 *
 * Query: `since` (ISO time, default an hour ago, never earlier than the retention), `until` (ISO
 * time, exclusive, default open), `service`, `cell`; for tenants also `tenant` and `limit` (1..1000,
 * default 100).
 */
import type { FastifyInstance } from "fastify";
import { RingfenceError } from "../../lib/errors.js";
import type { TelemetryWindow } from "../../world/contracts.js";
import { requireRole } from "../auth.js";
import type { ControllerContext } from "../context.js";
import { ERROR_RESPONSES } from "../http-errors.js";
import { TELEMETRY_ROW, TELEMETRY_WINDOW, TENANT_ROW } from "../schemas.js";
import { TELEMETRY_RETENTION_MS, type TelemetryQuery } from "../telemetry-store.js";

/** Largest telemetry window body: 5,000 rows and 50,000 tenant rows fit. */
export const TELEMETRY_BODY_LIMIT = 16 * 1024 * 1024;

const DEFAULT_RANGE_MS = 60 * 60 * 1000;
const DEFAULT_TENANTS = 100;
const MAX_TENANTS = 1_000;

const TIME = { type: "string", format: "date-time", maxLength: 64 } as const;
const NAME = { type: "string", minLength: 1, maxLength: 200 } as const;
const RANGE_PROPERTIES = { since: TIME, until: TIME, service: NAME, cell: NAME } as const;

interface RangeQuery {
  since?: string;
  until?: string;
  service?: string;
  cell?: string;
}

const RANGE_RESPONSE = {
  since: { type: "string" },
  until: { anyOf: [{ type: "string" }, { type: "null" }] },
} as const;

/** The range a query asks for, with its defaults, clipped to the retention. */
function resolveRange(ctx: ControllerContext, q: RangeQuery): TelemetryQuery & { open: boolean } {
  const now = ctx.clock();
  const requested = q.since === undefined ? now - DEFAULT_RANGE_MS : Date.parse(q.since);
  const sinceMs = Math.max(requested, now - TELEMETRY_RETENTION_MS);
  const untilMs = q.until === undefined ? Number.POSITIVE_INFINITY : Date.parse(q.until);
  if (untilMs <= sinceMs) {
    throw new RingfenceError(
      "RINGFENCE_BAD_REQUEST",
      `querystring.until (${q.until}) must be after since (${new Date(sinceMs).toISOString()})`,
      { problems: [{ path: "querystring.until", message: "must be after since" }] },
    );
  }
  return { sinceMs, untilMs, service: q.service, cell: q.cell, open: q.until === undefined };
}

const rangeOut = (r: { sinceMs: number; untilMs: number; open: boolean }) => ({
  since: new Date(r.sinceMs).toISOString(),
  until: r.open ? null : new Date(r.untilMs).toISOString(),
});

export function registerTelemetryRoutes(app: FastifyInstance, ctx: ControllerContext): void {
  const read = requireRole(ctx.tokens, "read");
  const agent = requireRole(ctx.tokens, "agent");

  app.post<{ Body: TelemetryWindow }>(
    "/v1/telemetry",
    {
      onRequest: agent,
      bodyLimit: TELEMETRY_BODY_LIMIT,
      schema: { body: TELEMETRY_WINDOW, response: { 204: { type: "null" }, ...ERROR_RESPONSES } },
    },
    async (request, reply) => {
      const window = request.body;
      if (!ctx.index.regions.has(window.router)) {
        throw new RingfenceError(
          "RINGFENCE_NOT_FOUND",
          `no region ${window.router} in this world; body.router is the router's region, one of ${[
            ...ctx.index.regions,
          ].join(", ")}`,
          { problems: [{ path: "body.router", message: "is not a region of this world" }] },
        );
      }
      await ctx.store.telemetry.record(window);
      return reply.code(204).send();
    },
  );

  app.get<{ Querystring: RangeQuery }>(
    "/v1/telemetry",
    {
      onRequest: read,
      schema: {
        querystring: { type: "object", additionalProperties: false, properties: RANGE_PROPERTIES },
        response: {
          200: {
            type: "object",
            required: ["since", "until", "rows", "truncated"],
            properties: {
              ...RANGE_RESPONSE,
              rows: { type: "array", items: TELEMETRY_ROW },
              /** More rows matched than one answer holds: narrow the query. */
              truncated: { type: "boolean" },
            },
          },
          ...ERROR_RESPONSES,
        },
      },
    },
    async (request) => {
      const range = resolveRange(ctx, request.query);
      return { ...rangeOut(range), ...(await ctx.store.telemetry.rows(range)) };
    },
  );

  app.get<{ Querystring: RangeQuery & { tenant?: string; limit?: string } }>(
    "/v1/telemetry/tenants",
    {
      onRequest: read,
      schema: {
        querystring: {
          type: "object",
          additionalProperties: false,
          properties: {
            ...RANGE_PROPERTIES,
            tenant: NAME,
            limit: { type: "string", pattern: "^[0-9]{1,4}$" },
          },
        },
        response: {
          200: {
            type: "object",
            required: ["since", "until", "tenants"],
            properties: { ...RANGE_RESPONSE, tenants: { type: "array", items: TENANT_ROW } },
          },
          ...ERROR_RESPONSES,
        },
      },
    },
    async (request) => {
      const limit = Number(request.query.limit ?? DEFAULT_TENANTS);
      if (limit < 1 || limit > MAX_TENANTS) {
        throw new RingfenceError(
          "RINGFENCE_BAD_REQUEST",
          `querystring.limit must be 1..${MAX_TENANTS}, got ${limit}`,
          { problems: [{ path: "querystring.limit", message: `must be between 1 and ${MAX_TENANTS}` }] },
        );
      }
      const range = resolveRange(ctx, request.query);
      return {
        ...rangeOut(range),
        tenants: await ctx.store.telemetry.tenants({ ...range, tenant: request.query.tenant, limit }),
      };
    },
  );
}
