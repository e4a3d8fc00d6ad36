/**
 * What the failover reconciler and switchovers share: their options, the record of a failover or
 * switchover under way (stored on the cell, then in the history), and how their events look.
 */
import type { NewEvent } from "./store-records.js";

/**
 * The reconciler's own timing. Everything the topology says (detection, promotion, failback, durability)
 * is read from the compiled topology, never from here: `topology.failover`.
 */
export interface FailoverOptions {
  /** How often cells are looked at. Default 250 ms. */
  readonly tickMs?: number;
  /** How long a switchover may wait for the target to catch up before it gives up. Default 10 s. */
  readonly switchoverTimeoutMs?: number;
  /**
   * How long a switchover waits, before it fences, for the cell's other standbys to stream from
   * the target; it fences then whatever they do. Default 3 s.
   */
  readonly switchoverPrepareMs?: number;
}

/** The failover under way, as stored on the cell. */
export interface FailoverRecord {
  readonly kind: "automatic" | "consent" | "switchover" | "failback";
  readonly from: string;
  /** The region a switchover or failback moves the primary to. */
  readonly to?: string;
  readonly reason: string;
  readonly startedAtMs: number;
  /** The desired version that fenced the cell: agents at or past it have closed its writers. */
  readonly fenceVersion?: number;
  /**
   * The desired version a switchover asked every agent to report under once all writers were
   * fenced: a database report probed under it or later was read after the last writer closed.
   */
  readonly positionsVersion?: number;
  readonly steps: Readonly<Record<string, number>>;
  readonly decision?: {
    readonly target: string;
    readonly flushLsn: string;
    readonly proof?: string;
    readonly reason?: string;
  };
  readonly estimate?: { readonly bytes: number; readonly seconds: number; readonly basis: string };
  readonly consent?: {
    readonly reason: string;
    readonly atMs: number;
    /** The quorum standbys that had not answered when consent was given (database slot ids). */
    readonly missing?: readonly string[];
    /** The timeline the cell was on before the promotion (the survivor's, as it last reported). */
    readonly timeline?: number | null;
  };
  /** What the missing standbys turned out to hold past the promoted position, once they returned. */
  readonly lossFound?: Readonly<Record<string, number>>;
}

/** An event of the reconciler about a cell. */
export function event(kind: string, cell: string, message: string, data: Record<string, unknown>): NewEvent {
  return { kind, actor: "controller", subject: cell, message, data };
}
