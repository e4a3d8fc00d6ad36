/**
 * What every route of the controller needs, created once by `startController`.
 */
import type { Tokens } from "./auth.js";
import type { DesiredWaiters } from "./desired-waiters.js";
import type { EventFeed } from "./events.js";
import type { Evidence } from "./evidence.js";
import type { FailoverCoordinator } from "./failover.js";
import type { RoutingFeed } from "./routing-feed.js";
import type { Store } from "./store.js";
import type { WorldIndex } from "./world-index.js";

export interface ControllerContext {
  readonly index: WorldIndex;
  readonly store: Store;
  readonly feed: EventFeed;
  /** The live routing table behind `GET /v1/routing/stream`. */
  readonly routing: RoutingFeed;
  /** What agents reported that failover decides on (probes, positions, replication history). */
  readonly evidence: Evidence;
  /** The failover reconciler. */
  readonly failover: FailoverCoordinator;
  /** Long polls of `GET /v1/agents/:zone/desired?after=N`. */
  readonly desired: DesiredWaiters;
  readonly tokens: Tokens;
  /** Milliseconds since the epoch. */
  readonly clock: () => number;
  readonly heartbeatTimeoutMs: number;
  /** ringfence's package version, reported by `/v1/health`. */
  readonly version: string;
}
