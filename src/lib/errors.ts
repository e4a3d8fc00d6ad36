/**
 * One registry of every error ringfence raises. Each code has an HTTP status, whether a client may
 * retry, and a one-line description; `docs/errors.md` documents every code and a test keeps the two
 * in step. Users match on `code`, never on the message.
 */
export const ERROR_CODES = {
  RINGFENCE_USAGE: {
    status: 400,
    retryable: false,
    description: "A command-line flag or argument is missing or malformed.",
  },
  RINGFENCE_TOPOLOGY_NOT_FOUND: {
    status: 404,
    retryable: false,
    description: "The topology file (or bundled topology name) does not exist or cannot be read.",
  },
  RINGFENCE_TOPOLOGY_YAML: {
    status: 400,
    retryable: false,
    description: "The topology file is not valid YAML; the message gives line and column.",
  },
  RINGFENCE_TOPOLOGY_INVALID: {
    status: 400,
    retryable: false,
    description:
      "The topology parsed but breaks the schema or a cross-field rule; every problem is listed with its path and fix.",
  },
  RINGFENCE_PG_NOT_FOUND: {
    status: 500,
    retryable: false,
    description:
      "PostgreSQL server binaries (initdb, postgres) were not found on the system nor from npm; the message says how to install them or point RINGFENCE_PG_BIN at them.",
  },
  RINGFENCE_PG_USER: {
    status: 500,
    retryable: false,
    description:
      "Running as root with no postgres user, ringfence could not create its dedicated ringfence-pg system user to run PostgreSQL as.",
  },
  RINGFENCE_PG_FAILED: {
    status: 500,
    retryable: true,
    description:
      "A PostgreSQL tool (initdb, pg_basebackup, pg_rewind) or server failed; the message includes its output.",
  },
  RINGFENCE_WORLD_NOT_FOUND: {
    status: 404,
    retryable: false,
    description:
      "No local world in the state directory: start one with `ringfence up`, or pass the right --state-dir.",
  },
  RINGFENCE_WORLD_RUNNING: {
    status: 409,
    retryable: false,
    description: "A world is already running from this state directory; stop it with `ringfence down` first.",
  },
  RINGFENCE_WORLD_ORPHANS: {
    status: 409,
    retryable: false,
    description:
      "Processes of an earlier run of the world (its supervisor was killed or crashed) still run and hold its addresses; `ringfence down` stops them.",
  },
  RINGFENCE_WORLD_START_FAILED: {
    status: 500,
    retryable: true,
    description:
      "The local world did not become ready in time; the message names what was not ready and the log lines that say why. Everything the start had started is stopped.",
  },
  RINGFENCE_WORLD_START_INTERRUPTED: {
    status: 503,
    retryable: true,
    description:
      "The local world was stopped (Ctrl-C, SIGTERM, `ringfence down`) while it was starting; everything the start had started is stopped.",
  },
  RINGFENCE_PLAN_GATE_FAILED: {
    status: 422,
    retryable: false,
    description:
      "`ringfence plan --fail-on` found a check that failed (spof, objectives, capacity or availability).",
  },
  RINGFENCE_BAD_REQUEST: {
    status: 400,
    retryable: false,
    description:
      "An API request is malformed: a body, parameter or query field is missing, of the wrong type or out of range; each problem names the field. From a router: the request is not valid HTTP/1.1 (the message says what: a bad request line, a control character in a header, both Transfer-Encoding and Content-Length, ...).",
  },
  RINGFENCE_UNAUTHORIZED: {
    status: 401,
    retryable: false,
    description: "An API request has no bearer token, a malformed Authorization header, or an unknown token.",
  },
  RINGFENCE_FORBIDDEN: {
    status: 403,
    retryable: false,
    description: "The bearer token is valid but its role (reader, agent, operator) may not use this route.",
  },
  RINGFENCE_NOT_FOUND: {
    status: 404,
    retryable: false,
    description: "The route, or the cell, zone, region or process it names, does not exist in this world.",
  },
  RINGFENCE_PAYLOAD_TOO_LARGE: {
    status: 413,
    retryable: false,
    description: "An API request body is larger than the controller accepts (1 MiB; 16 MiB for telemetry).",
  },
  RINGFENCE_UNSUPPORTED_MEDIA_TYPE: {
    status: 415,
    retryable: false,
    description: "An API request body is not sent as `application/json`.",
  },
  RINGFENCE_FAILOVER_NOT_PENDING: {
    status: 409,
    retryable: false,
    description:
      "The cell is not in the failover state the action needs (e.g. approving a cell that is not awaiting consent, or one with no standby to promote).",
  },
  RINGFENCE_ALREADY_DRAINED: {
    status: 409,
    retryable: false,
    description:
      "The region, zone or instance is already drained; the message names the drain. Remove it first or leave it.",
  },
  RINGFENCE_TOO_MANY_STREAMS: {
    status: 503,
    retryable: true,
    description:
      "The controller already serves as many live streams as it allows; retry later (routers keep their table meanwhile).",
  },
  RINGFENCE_CONTROL_DB_UNAVAILABLE: {
    status: 503,
    retryable: true,
    description:
      "The controller cannot reach its control database; the data plane keeps its last-known-good configuration. Retry after the database is back.",
  },
  RINGFENCE_TENANT_MISSING: {
    status: 400,
    retryable: false,
    description:
      "The request carries no tenant id (the X-Tenant header, or the path prefix when configured).",
  },
  RINGFENCE_TENANT_INVALID: {
    status: 400,
    retryable: false,
    description:
      "The tenant id is malformed: it must be 1-128 letters, digits, '.', '_' or '-', not starting with '.'.",
  },
  RINGFENCE_BODY_TOO_LARGE: {
    status: 413,
    retryable: false,
    description: "The request body is larger than the router accepts (1 MiB by default).",
  },
  RINGFENCE_HEADERS_TOO_LARGE: {
    status: 431,
    retryable: false,
    description: "The request head is larger than the router accepts (16 KiB).",
  },
  RINGFENCE_REQUEST_TIMEOUT: {
    status: 408,
    retryable: true,
    description:
      "The client did not finish sending its request head in time, or its body stalled as long (10 s): a slow client is cut off.",
  },
  RINGFENCE_EXPECTATION_FAILED: {
    status: 417,
    retryable: false,
    description:
      "The request carries an Expect header other than 100-continue, which the router does not support.",
  },
  RINGFENCE_NOT_IMPLEMENTED: {
    status: 501,
    retryable: false,
    description:
      "The request uses what the router does not implement: a Transfer-Encoding other than chunked, or the CONNECT method.",
  },
  RINGFENCE_HTTP_VERSION_NOT_SUPPORTED: {
    status: 505,
    retryable: false,
    description: "The request's HTTP version is neither 1.1 nor 1.0 (the router speaks HTTP/1.x to clients).",
  },
  RINGFENCE_SHED: {
    status: 503,
    retryable: true,
    description:
      "The router is shedding load: the tenant's cell has too many requests in flight at this router (routers.maxInFlightPerCell).",
  },
  RINGFENCE_NO_HEALTHY_INSTANCE: {
    status: 503,
    retryable: true,
    description:
      "No instance of the service in the tenant's cell answered in any region (all drained, unhealthy, ejected or failing), and the route has no fallback.",
  },
  RINGFENCE_NO_ROUTING_TABLE: {
    status: 503,
    retryable: true,
    description:
      "The router has no routing table: it never reached the controller and has none on disk, or its last-known-good table outlived routers.lastKnownGoodTtl.",
  },
  RINGFENCE_UPSTREAM_FAILED: {
    status: 502,
    retryable: false,
    description:
      "A non-idempotent request failed after it may have reached the instance, so it was not retried.",
  },
  RINGFENCE_INTERNAL: {
    status: 500,
    retryable: false,
    description:
      "A bug in ringfence. Please report it with the command and the stack trace printed with RINGFENCE_DEBUG=1.",
  },
} as const satisfies Record<string, { status: number; retryable: boolean; description: string }>;

export type ErrorCode = keyof typeof ERROR_CODES;

/** A problem located in an input document, e.g. `services[0].slos[1].availability`. */
export interface Problem {
  /** Dotted/indexed path of the offending field; empty for the whole document. */
  path: string;
  /** What is wrong and how to fix it. */
  message: string;
  /** The file the problem is in, when it came from one. */
  file?: string;
  /** 1-based line and column in the file, when known. */
  line?: number;
  column?: number;
}

/**
 * The base class of every error ringfence raises on purpose. It carries a stable `code`, the HTTP
 * status and retryability from the registry, and optional located `problems` (all problems in an
 * input are reported at once).
 */
export class RingfenceError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly retryable: boolean;
  readonly problems: readonly Problem[];

  constructor(code: ErrorCode, message: string, options?: { problems?: Problem[]; cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = "RingfenceError";
    this.code = code;
    this.status = ERROR_CODES[code].status;
    this.retryable = ERROR_CODES[code].retryable;
    this.problems = Object.freeze([...(options?.problems ?? [])]);
  }

  /** A JSON shape for APIs and `--json` output. */
  toJSON(): { code: ErrorCode; message: string; retryable: boolean; problems: readonly Problem[] } {
    return { code: this.code, message: this.message, retryable: this.retryable, problems: this.problems };
  }
}

export function isRingfenceError(err: unknown): err is RingfenceError {
  return err instanceof RingfenceError;
}

/** Formats a problem as `file:line:col path: message` (parts omitted when unknown). */
export function formatProblem(problem: Problem): string {
  const where = [problem.file, problem.line, problem.column].filter((p) => p !== undefined).join(":");
  const path = problem.path === "" ? "" : `${problem.path}: `;
  return `${where === "" ? "" : `${where}: `}${path}${problem.message}`;
}
