/**
 * JSON schemas of the controller API, mirroring `world/contracts.ts`. Request schemas bound every
 * array and string, so one report can never grow the database without limit; reports from agents and
 * routers tolerate unknown fields (a newer agent may send more) and the controller stores only the
 * fields it knows. Operator bodies reject unknown fields, so a typo never passes silently.
 */

const str = (maxLength: number, minLength = 0) => ({ type: "string", minLength, maxLength }) as const;
const nullable = <T extends object>(schema: T) => ({ anyOf: [schema, { type: "null" }] }) as const;
const count = { type: "integer", minimum: 0 } as const;
const HEALTH = ["healthy", "degraded", "unhealthy", "unknown"] as const;

/** Limits of what one heartbeat may carry. */
export const LIMITS = {
  processes: 5_000,
  databases: 1_000,
  standbys: 64,
  events: 500,
  id: 300,
  text: 2_000,
  reason: 500,
} as const;

export const CELL_STATE = {
  type: "object",
  required: ["cell", "primary", "epoch", "fenced"],
  properties: {
    cell: { type: "string" },
    primary: { type: "string" },
    epoch: { type: "integer" },
    fenced: { type: "boolean" },
    commit: { enum: ["quorum", "async"] },
    switchingTo: { type: "string" },
  },
} as const;

export const WORLD_EVENT = {
  type: "object",
  required: ["id", "at", "kind", "actor", "subject", "message", "data"],
  properties: {
    id: { type: "integer" },
    at: { type: "string" },
    kind: { type: "string" },
    actor: { type: "string" },
    subject: { type: "string" },
    message: { type: "string" },
    data: { type: "object", additionalProperties: true },
  },
} as const;

export const PROCESS_REPORT = {
  type: "object",
  required: ["id", "kind", "state", "pid", "restarts", "health", "detail", "since"],
  properties: {
    id: str(LIMITS.id, 1),
    kind: { enum: ["database", "instance", "writer"] },
    state: { enum: ["starting", "running", "backoff", "stopped", "failed"] },
    pid: nullable(count),
    restarts: count,
    health: { enum: HEALTH },
    detail: str(LIMITS.text),
    since: str(64),
  },
} as const;

export const DATABASE_REPORT = {
  type: "object",
  required: ["id", "role", "lsn", "synchronousStandbyNames", "standbys"],
  properties: {
    id: str(LIMITS.id, 1),
    role: { enum: ["primary", "standby", "unknown"] },
    lsn: nullable(str(64)),
    flushLsn: nullable(str(64)),
    timeline: nullable(count),
    synchronousStandbyNames: nullable(str(LIMITS.text)),
    streamingFrom: nullable(str(LIMITS.id)),
    standbys: {
      type: "array",
      maxItems: LIMITS.standbys,
      items: {
        type: "object",
        required: ["applicationName", "state", "syncState", "lagBytes", "flushLagMs", "replayLagMs"],
        properties: {
          applicationName: str(128),
          state: str(64),
          syncState: str(64),
          lagBytes: { type: "number", minimum: 0 },
          flushLagMs: nullable({ type: "number", minimum: 0 }),
          replayLagMs: nullable({ type: "number", minimum: 0 }),
        },
      },
    },
  },
} as const;

export const AGENT_EVENT = {
  type: "object",
  required: ["at", "kind", "subject", "message"],
  properties: {
    at: { type: "string", format: "date-time", maxLength: 64 },
    kind: { type: "string", minLength: 1, maxLength: 100, pattern: "^[a-z0-9][a-z0-9._-]*$" },
    subject: str(LIMITS.id),
    message: str(LIMITS.text),
    data: { type: "object", maxProperties: 50, additionalProperties: true },
  },
} as const;

export const OBSERVER_PROBE = {
  type: "object",
  required: ["target", "ok", "consecutiveFailures", "latencyMs", "detail"],
  properties: {
    target: str(LIMITS.id, 1),
    ok: { type: "boolean" },
    consecutiveFailures: count,
    latencyMs: nullable({ type: "number", minimum: 0 }),
    detail: str(LIMITS.text),
    ageMs: { type: "number", minimum: 0 },
  },
} as const;

export const HEARTBEAT = {
  type: "object",
  required: ["zone", "pid", "startedAt", "desiredVersion", "processes", "databases", "events"],
  properties: {
    zone: str(LIMITS.id, 1),
    pid: count,
    startedAt: str(64),
    desiredVersion: count,
    processes: { type: "array", maxItems: LIMITS.processes, items: PROCESS_REPORT },
    databases: { type: "array", maxItems: LIMITS.databases, items: DATABASE_REPORT },
    events: { type: "array", maxItems: LIMITS.events, items: AGENT_EVENT },
    sentMonoMs: { type: "number", minimum: 0 },
    observations: { type: "array", maxItems: LIMITS.databases, items: OBSERVER_PROBE },
  },
} as const;

export const ROUTER_REPORT = {
  type: "object",
  required: ["region", "pid", "tableVersion", "stale", "requests", "errors"],
  properties: {
    region: str(LIMITS.id, 1),
    pid: count,
    tableVersion: count,
    stale: { type: "boolean" },
    requests: { type: "number", minimum: 0 },
    errors: { type: "number", minimum: 0 },
  },
} as const;

export const REASON = str(LIMITS.reason, 1);

export const REASON_BODY = {
  type: "object",
  required: ["reason"],
  additionalProperties: false,
  properties: { reason: REASON },
} as const;

export const RESTART_BODY = {
  type: "object",
  required: ["id", "reason"],
  additionalProperties: false,
  properties: { id: str(LIMITS.id, 1), reason: REASON },
} as const;

export const DESIRED_STATE = {
  type: "object",
  required: ["version", "zone", "cells", "restarts"],
  properties: {
    version: { type: "integer" },
    zone: { type: "string" },
    cells: { type: "array", items: CELL_STATE },
    restarts: { type: "object", additionalProperties: { type: "integer" } },
  },
} as const;

export const DRAIN_KINDS = ["region", "zone", "instance"] as const;

export const DRAIN = {
  type: "object",
  required: ["id", "target", "reason", "createdAt"],
  properties: {
    id: { type: "string" },
    target: {
      type: "object",
      required: ["kind", "id"],
      properties: { kind: { type: "string", enum: DRAIN_KINDS }, id: { type: "string" } },
    },
    reason: { type: "string" },
    createdAt: { type: "string" },
  },
} as const;

export const DRAIN_BODY = {
  type: "object",
  required: ["target", "reason"],
  additionalProperties: false,
  properties: {
    target: {
      type: "object",
      required: ["kind", "id"],
      additionalProperties: false,
      properties: { kind: { enum: DRAIN_KINDS }, id: str(LIMITS.id, 1) },
    },
    reason: REASON,
  },
} as const;

export const ROUTING_TABLE = {
  type: "object",
  required: ["version", "generatedAt", "buckets", "bucketTable", "cells", "health", "drains"],
  properties: {
    version: { type: "integer" },
    generatedAt: { type: "string" },
    buckets: { type: "integer" },
    bucketTable: { type: "array", items: { type: "array", items: { type: "integer" } } },
    cells: { type: "array", items: CELL_STATE },
    health: { type: "object", additionalProperties: { type: "string", enum: HEALTH } },
    drains: { type: "array", items: DRAIN },
  },
} as const;

/** Limits of what one telemetry window may carry. */
export const TELEMETRY_LIMITS = {
  rows: 5_000,
  tenants: 50_000,
  name: 200,
  route: 300,
  /** The router's `${router}:${windowStartMs}:${sequence}:${random}`, with room to spare. */
  windowId: 500,
  /** A window longer than an hour is a bug in the router, not a window. */
  windowMs: 3_600_000,
} as const;

const nonNegative = { type: "number", minimum: 0 } as const;
/** Counts summed in the database: kept within what a JavaScript number holds exactly. */
const bigCount = { type: "integer", minimum: 0, maximum: Number.MAX_SAFE_INTEGER } as const;

export const TELEMETRY_ROW = {
  type: "object",
  required: [
    "service",
    "route",
    "cell",
    "regionServed",
    "version",
    "status",
    "requests",
    "retries",
    "latencyMs",
  ],
  properties: {
    service: str(TELEMETRY_LIMITS.name, 1),
    route: str(TELEMETRY_LIMITS.route, 1),
    cell: str(TELEMETRY_LIMITS.name, 1),
    regionServed: str(TELEMETRY_LIMITS.name, 1),
    version: str(TELEMETRY_LIMITS.name),
    status: { type: "integer", minimum: 0, maximum: 999 },
    requests: bigCount,
    retries: bigCount,
    latencyMs: {
      type: "object",
      required: ["p50", "p95", "p99", "max", "sum"],
      properties: {
        p50: nonNegative,
        p95: nonNegative,
        p99: nonNegative,
        max: nonNegative,
        sum: nonNegative,
      },
    },
  },
} as const;

export const TENANT_ROW = {
  type: "object",
  required: ["tenant", "cell", "service", "route", "requests", "errors"],
  properties: {
    tenant: str(TELEMETRY_LIMITS.name, 1),
    cell: str(TELEMETRY_LIMITS.name, 1),
    service: str(TELEMETRY_LIMITS.name, 1),
    route: str(TELEMETRY_LIMITS.route, 1),
    requests: bigCount,
    errors: bigCount,
  },
} as const;

export const TELEMETRY_WINDOW = {
  type: "object",
  required: ["router", "windowId", "windowStart", "windowMs", "rows", "tenants"],
  properties: {
    router: str(LIMITS.id, 1),
    windowId: str(TELEMETRY_LIMITS.windowId, 1),
    windowStart: { type: "string", format: "date-time", maxLength: 64 },
    windowMs: { type: "integer", minimum: 1, maximum: TELEMETRY_LIMITS.windowMs },
    rows: { type: "array", maxItems: TELEMETRY_LIMITS.rows, items: TELEMETRY_ROW },
    tenants: { type: "array", maxItems: TELEMETRY_LIMITS.tenants, items: TENANT_ROW },
    overflowRequests: bigCount,
    overflowTenantRequests: bigCount,
  },
} as const;

/** Path parameters: names of things in the layout. Their existence is checked by the handler (404). */
export const param = (...names: string[]) =>
  ({
    type: "object",
    required: names,
    properties: Object.fromEntries(names.map((n) => [n, str(LIMITS.id, 1)])),
  }) as const;
