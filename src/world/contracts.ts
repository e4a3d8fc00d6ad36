/**
 * The messages between the controller, agents, routers and the CLI of a local world. The controller
 * validates them with JSON schemas; these types are what both sides compile against.
 *
 * Conventions: times are ISO 8601 strings; zone ids contain a slash (`us-east/a`) and are
 * URL-encoded in paths (`/v1/agents/us-east%2Fa/desired`); process ids are `database:<slot id>`,
 * `instance:<slot id>` and `writer:<slot id>` with slot ids from the layout. Agents and routers use
 * the agent token.
 */

/** Dynamic state of one cell, owned by the controller and persisted in the control database. */
export interface CellState {
  readonly cell: string;
  /** Region of the current primary. */
  readonly primary: string;
  /** Bumped on every change of primary (fencing token). */
  readonly epoch: number;
  /** While fenced, every writer endpoint of the cell refuses connections. */
  readonly fenced: boolean;
  /**
   * How the primary commits: `quorum` waits for the out-of-region standbys
   * (`synchronous_standby_names = 'ANY k (…)'`); `async` does not (the `available` durability
   * policy, when no out-of-region standby is left). Absent means `quorum`.
   */
  readonly commit?: "quorum" | "async";
  /**
   * During a planned switchover, the region whose standby is about to be promoted. The cell's other
   * standbys stream from it already (it relays the primary's WAL), so that when it is promoted they
   * only follow it onto its new timeline instead of connecting to it then, while the new primary's
   * first commits wait for one of them. Absent otherwise.
   */
  readonly switchingTo?: string;
}

/** What an agent must run, fetched with `GET /v1/agents/:zone/desired` (agent token). */
export interface DesiredState {
  /** Increases whenever anything in it changes. */
  readonly version: number;
  readonly zone: string;
  readonly cells: readonly CellState[];
  /** Process ids (`database:cell-0/us-east`, `instance:directory/cell-0/us-east/1`) and a nonce: a
   * changed nonce asks the agent to restart that process once. */
  readonly restarts: Readonly<Record<string, number>>;
}

export type ProcessState = "starting" | "running" | "backoff" | "stopped" | "failed";
export type Health = "healthy" | "degraded" | "unhealthy" | "unknown";

/** One supervised process as an agent reports it. */
export interface ProcessReport {
  /** `database:cell-0/us-east`, `instance:directory/cell-0/us-east/1`, `writer:cell-0/us-east`. */
  readonly id: string;
  readonly kind: "database" | "instance" | "writer";
  readonly state: ProcessState;
  readonly pid: number | null;
  readonly restarts: number;
  readonly health: Health;
  /** Why it is not healthy, or what it is doing. */
  readonly detail: string;
  readonly since: string;
}

/** Replication as seen from a database (a primary reports its standbys). */
export interface DatabaseReport {
  /** The database slot id, `cell-0/us-east`. */
  readonly id: string;
  readonly role: "primary" | "standby" | "unknown";
  /** Current WAL position (primary: insert; standby: replay). */
  readonly lsn: string | null;
  /**
   * The WAL position known durable here (primary: flushed; standby: received and flushed, which
   * stays put once its primary is gone). What failover compares. Absent from older agents.
   */
  readonly flushLsn?: string | null;
  /** The timeline the instance is on (bumped by every promotion). */
  readonly timeline?: number | null;
  readonly synchronousStandbyNames: string | null;
  /**
   * A standby: the database slot its WAL receiver streams from now (null while it does not
   * stream). Absent from older agents.
   */
  readonly streamingFrom?: string | null;
  readonly standbys: readonly {
    readonly applicationName: string;
    readonly state: string;
    readonly syncState: string;
    readonly lagBytes: number;
    readonly flushLagMs: number | null;
    readonly replayLagMs: number | null;
  }[];
}

/** Something that happened on an agent, appended to the event log by the controller. */
export interface AgentEvent {
  readonly at: string;
  readonly kind: string;
  readonly subject: string;
  readonly message: string;
  readonly data?: Record<string, unknown>;
}

/**
 * An observer's view of a primary in another region: the agent probes it through the WAN with a
 * query every half second, so the controller can tell a dead or isolated primary from a partition
 * that isolates only the controller or one observer.
 */
export interface ObserverProbe {
  /** The database slot probed, `cell-0/us-east` (the cell's primary as the agent last knew it). */
  readonly target: string;
  readonly ok: boolean;
  /** Failed probes in a row (0 after a success). */
  readonly consecutiveFailures: number;
  /** Round trip of the last successful probe, in ms. */
  readonly latencyMs: number | null;
  /** The last error, when the probe failed. */
  readonly detail: string;
  /**
   * How long before the heartbeat's `sentMonoMs` the result was observed, on the observer's monotonic
   * clock (a failure from when its probe began, a success from when the answer came). Absent from
   * older agents.
   */
  readonly ageMs?: number;
}

/** `POST /v1/agents/:zone/heartbeat` (agent token), every second. */
export interface Heartbeat {
  readonly zone: string;
  readonly pid: number;
  readonly startedAt: string;
  /** Version of the desired state the agent is running. */
  readonly desiredVersion: number;
  readonly processes: readonly ProcessReport[];
  readonly databases: readonly DatabaseReport[];
  readonly events: readonly AgentEvent[];
  /**
   * The agent's monotonic clock (`performance.now()`) when it sent this heartbeat: the controller
   * dates observations by it and sees gaps (a paused agent) in it. Absent from older agents.
   */
  readonly sentMonoMs?: number;
  /** This zone's probes of the cells' primaries in other regions. Absent from older agents. */
  readonly observations?: readonly ObserverProbe[];
}

/** What a drain takes out of routing: a whole region, a zone (`us-east/a`) or one instance slot id. */
export interface DrainTarget {
  readonly kind: "region" | "zone" | "instance";
  readonly id: string;
}

/** An operator's drain (`POST /v1/drains`, operator token), until removed (`DELETE /v1/drains/:id`). */
export interface Drain {
  /** `drain-<n>`. */
  readonly id: string;
  readonly target: DrainTarget;
  readonly reason: string;
  readonly createdAt: string;
}

/**
 * What routers need, from `GET /v1/routing` (reader token), or pushed as server-sent events
 * (`event: routing`, the whole table as data) by `GET /v1/routing/stream` whenever it changes.
 */
export interface RoutingTable {
  readonly version: number;
  readonly generatedAt: string;
  readonly buckets: number;
  /** bucket → cell index, run-length encoded as [cell, count] pairs. */
  readonly bucketTable: readonly (readonly [number, number])[];
  readonly cells: readonly CellState[];
  /** Health of each instance slot id (no `instance:` prefix) as its agent last reported it (unknown when not reported). */
  readonly health: Readonly<Record<string, Health>>;
  /** Active drains: routers send nothing to drained regions, zones or instances. */
  readonly drains: readonly Drain[];
}

/** Aggregated router telemetry for one (service, route, cell, region served, version, status) in a window. */
export interface TelemetryRow {
  readonly service: string;
  /** The route pattern matched, e.g. `GET /users/:id`, or `other`. */
  readonly route: string;
  readonly cell: string;
  /** Region of the instance that answered (or the router's own region when none did). */
  readonly regionServed: string;
  readonly version: string;
  readonly status: number;
  readonly requests: number;
  /** Extra upstream attempts made for these requests. */
  readonly retries: number;
  readonly latencyMs: {
    readonly p50: number;
    readonly p95: number;
    readonly p99: number;
    readonly max: number;
    readonly sum: number;
  };
}

/** Per-tenant counts in a window (for per-tenant SLIs). */
export interface TenantRow {
  readonly tenant: string;
  readonly cell: string;
  readonly service: string;
  readonly route: string;
  readonly requests: number;
  /** Answers with status ≥ 500 (the tenant saw a failure). */
  readonly errors: number;
}

/** `POST /v1/telemetry` (agent token): one router's requests over one window (10 s by default). */
export interface TelemetryWindow {
  /** The router's region. */
  readonly router: string;
  /**
   * Unique among this router's windows, even across restarts: the controller stores a window once
   * per (router, windowId), so a window shipped again after a lost answer is not counted twice.
   */
  readonly windowId: string;
  readonly windowStart: string;
  readonly windowMs: number;
  /** At most 5,000: past the router's cap, requests are folded into rows with route `(overflow)`. */
  readonly rows: readonly TelemetryRow[];
  /** At most 50,000: past the router's cap, requests are folded into rows of tenant `(other)`. */
  readonly tenants: readonly TenantRow[];
  /** Requests of this window folded into an overflow row (they are in `rows` all the same). */
  readonly overflowRequests?: number;
  /** Requests of this window folded into a tenant `(other)` row (they are in `tenants` all the same). */
  readonly overflowTenantRequests?: number;
}

/** `POST /v1/routers/:region/heartbeat` (agent token): a router's own state, for status. */
export interface RouterReport {
  readonly region: string;
  readonly pid: number;
  readonly tableVersion: number;
  /** True when serving from a persisted table because the controller was unreachable. */
  readonly stale: boolean;
  readonly requests: number;
  readonly errors: number;
}

/** An event in the controller's log (`GET /v1/events`). */
export interface WorldEvent {
  readonly id: number;
  readonly at: string;
  readonly kind: string;
  /** `operator`, `agent:us-east/a`, `controller`. */
  readonly actor: string;
  readonly subject: string;
  readonly message: string;
  readonly data: Record<string, unknown>;
}

/** Run-length encodes a bucket table. */
export function encodeBucketTable(table: ArrayLike<number>): [number, number][] {
  const runs: [number, number][] = [];
  for (let i = 0; i < table.length; i++) {
    const cell = table[i] as number;
    const last = runs[runs.length - 1];
    if (last && last[0] === cell) last[1]++;
    else runs.push([cell, 1]);
  }
  return runs;
}

/** Expands a run-length encoded bucket table. */
export function decodeBucketTable(runs: readonly (readonly [number, number])[]): Uint32Array {
  const total = runs.reduce((n, [, count]) => n + count, 0);
  const table = new Uint32Array(total);
  let i = 0;
  for (const [cell, count] of runs) {
    table.fill(cell, i, i + count);
    i += count;
  }
  return table;
}
