/**
 * The types of the status document (`GET /v1/status`): the world, its regions and zones, cells and
 * their databases, instances and routers, each with its roll-up. Its shape at a glance, and the
 * rules the roll-ups follow, are in `status.ts`, which builds it.
 */
import type { DatabaseReport, Drain, Health, ProcessState, WorldEvent } from "../world/contracts.js";
import type { DurabilityPolicy } from "./durability.js";
import type { RollUp } from "./rollup.js";

export interface ReplicationStatus {
  readonly state: string;
  readonly syncState: string;
  readonly lagBytes: number;
  readonly flushLagMs: number | null;
  readonly replayLagMs: number | null;
}

export interface DatabaseStatus {
  readonly id: string;
  readonly region: string;
  readonly zone: string;
  readonly expectedRole: "primary" | "standby";
  readonly role: DatabaseReport["role"];
  readonly health: Health;
  readonly state: ProcessState | "unknown";
  readonly restarts: number | null;
  readonly pid: number | null;
  readonly lsn: string | null;
  readonly replication: ReplicationStatus | null;
}

export interface CellStatus {
  readonly cell: string;
  readonly home: string;
  readonly primary: string;
  readonly epoch: number;
  readonly fenced: boolean;
  readonly syncQuorum: number;
  readonly synchronousStandbyNames: string | null;
  /** The durability policy and the commit mode in force (async only under `available`). */
  readonly durability: { readonly policy: DurabilityPolicy; readonly commit: "quorum" | "async" };
  readonly rollup: RollUp;
  readonly databases: readonly DatabaseStatus[];
}

export interface InstanceStatus {
  readonly id: string;
  readonly service: string;
  readonly kind: "service" | "fallback";
  readonly cell: string;
  readonly region: string;
  readonly zone: string;
  readonly state: ProcessState | "unknown";
  readonly health: Health;
  readonly restarts: number | null;
  readonly pid: number | null;
  readonly detail: string;
  /** The drain that takes it out of routing (its own, its zone's or its region's), or null. */
  readonly drain: string | null;
  readonly rollup: RollUp;
}

export interface ZoneStatus {
  readonly id: string;
  readonly host: string;
  /** The drain of the zone or of its region, or null. */
  readonly drain: string | null;
  readonly agent: {
    readonly reachable: boolean;
    readonly lastHeartbeatAgeMs: number | null;
    readonly pid: number | null;
    readonly startedAt: string | null;
    readonly desiredVersion: number | null;
    /** Whether the agent runs the current desired state. */
    readonly inSync: boolean;
  };
  readonly rollup: RollUp;
}

export interface RegionStatus {
  readonly name: string;
  readonly drain: string | null;
  readonly rollup: RollUp;
  readonly zones: readonly ZoneStatus[];
}

export interface RouterStatus {
  readonly region: string;
  readonly reachable: boolean;
  readonly lastHeartbeatAgeMs: number | null;
  readonly stale: boolean | null;
  readonly tableVersion: number | null;
  /** The router serves an older routing table than the controller's current one. */
  readonly tableBehind: boolean;
  readonly requests: number | null;
  readonly errors: number | null;
  readonly pid: number | null;
}

export interface WorldStatus {
  readonly generatedAt: string;
  readonly world: {
    readonly name: string;
    readonly desiredVersion: number;
    readonly bucketTableVersion: number;
    readonly heartbeatTimeoutMs: number;
    readonly rollup: RollUp;
  };
  readonly regions: readonly RegionStatus[];
  readonly cells: readonly CellStatus[];
  readonly instances: readonly InstanceStatus[];
  readonly routers: readonly RouterStatus[];
  readonly drains: readonly Drain[];
  readonly events: readonly WorldEvent[];
}
