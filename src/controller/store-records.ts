/**
 * The records the store reads and writes: what it returns (snapshots, agent and router records,
 * drains, new events) and how rows of the control database map to the contracts' types.
 */
import { RingfenceError } from "../lib/errors.js";
import type {
  CellState,
  Drain,
  DrainTarget,
  Heartbeat,
  RouterReport,
  WorldEvent,
} from "../world/contracts.js";

/** What an agent last reported, without its events (those went to the event log). */
export type AgentReport = Omit<Heartbeat, "events">;

export interface AgentRecord {
  readonly zone: string;
  readonly lastHeartbeatMs: number;
  readonly report: AgentReport;
}

export interface RouterRecord {
  readonly region: string;
  readonly lastHeartbeatMs: number;
  readonly report: RouterReport;
}

export interface BucketTableState {
  readonly version: number;
  readonly runs: readonly (readonly [number, number])[];
}

/** The parts of the state an agent needs, read consistently. */
export interface DesiredParts {
  readonly desiredVersion: number;
  readonly cells: readonly CellState[];
  readonly restarts: Readonly<Record<string, number>>;
}

/** Everything the controller knows, read in one repeatable-read transaction. */
export interface Snapshot extends DesiredParts {
  readonly bucketTable: BucketTableState;
  readonly agents: readonly AgentRecord[];
  readonly routers: readonly RouterRecord[];
  /** Active drains, oldest first. */
  readonly drains: readonly Drain[];
}

/** What creating a drain did: the new drain, or the active drain of the same target that is in the way. */
export type DrainCreation =
  | {
      readonly created: true;
      readonly drain: Drain;
      readonly desiredVersion: number;
      readonly event: WorldEvent;
    }
  | { readonly created: false; readonly existing: Drain | undefined };

/** An event to append; `at` defaults to the store's clock. */
export interface NewEvent {
  readonly at?: string | number;
  readonly kind: string;
  readonly actor: string;
  readonly subject: string;
  readonly message: string;
  readonly data?: Record<string, unknown>;
}

/** The first row of a result that must have one. */
export function row<T>(rows: readonly T[]): T {
  const first = rows[0];
  if (first === undefined)
    throw new RingfenceError("RINGFENCE_INTERNAL", "the control database returned no row");
  return first;
}

export interface CellRow {
  cell: string;
  primary_region: string;
  epoch: number;
  fenced: boolean;
  commit_mode?: "quorum" | "async";
  /** The target of the switchover under way (from the failover record), else null. */
  switching_to?: string | null;
}

/** The columns a `CellRow` is read from (in a SELECT or a RETURNING of the cells table). */
export const CELL_COLUMNS =
  "cell, primary_region, epoch, fenced, commit_mode, " +
  "CASE WHEN phase = 'switching-over' THEN failover->>'to' END AS switching_to";

export interface DrainRow {
  n: string;
  kind: DrainTarget["kind"];
  target: string;
  reason: string;
  created_at: Date;
}

export const DRAIN_COLUMNS = "n, kind, target, reason, created_at";

export interface EventRow {
  id: string;
  at: Date;
  kind: string;
  actor: string;
  subject: string;
  message: string;
  data: Record<string, unknown>;
}

export const toCell = (r: CellRow): CellState => ({
  cell: r.cell,
  primary: r.primary_region,
  epoch: r.epoch,
  fenced: r.fenced,
  // Absent means quorum: the usual shape stays as small as it was.
  ...(r.commit_mode === "async" ? { commit: "async" as const } : {}),
  ...(r.switching_to ? { switchingTo: r.switching_to } : {}),
});
export const toDrain = (r: DrainRow): Drain => ({
  id: `drain-${r.n}`,
  target: { kind: r.kind, id: r.target },
  reason: r.reason,
  createdAt: r.created_at.toISOString(),
});
export const toEvent = (r: EventRow): WorldEvent => ({
  id: Number(r.id),
  at: r.at.toISOString(),
  kind: r.kind,
  actor: r.actor,
  subject: r.subject,
  message: r.message,
  data: r.data ?? {},
});
