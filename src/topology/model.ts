/**
 * The compiled topology: fully defaulted, cross-checked and frozen. Durations are in `...Ms` fields,
 * availabilities are ratios in (0, 1) (the file says percent), shares are ratios in [0, 1].
 */
import type { DetectionSettings } from "../failover/settings.js";
import type { ComponentKind } from "./schema.js";

export type { ComponentKind };

export interface Zone {
  /** `region/zone`, e.g. `us-east/a`. */
  readonly id: string;
  readonly name: string;
  readonly region: string;
}

export interface Region {
  readonly name: string;
  readonly index: number;
  readonly zones: readonly Zone[];
  readonly pair: string | undefined;
  /** One-way WAN latency to every other region, in milliseconds. */
  readonly latencyMs: Readonly<Record<string, number>>;
  /** Share of client traffic that originates in this region, in [0, 1]; shares sum to 1. */
  readonly trafficShare: number;
}

export interface Cell {
  /** `cell-N`. */
  readonly id: string;
  readonly index: number;
  /** Replica regions, home (primary) first, then standbys by preference. */
  readonly regions: readonly string[];
  readonly home: string;
  /** Buckets mapped to this cell by the default bucket table. */
  readonly buckets: number;
  /** Share of tenants in this cell (buckets / total buckets). */
  readonly tenantShare: number;
}

export interface Route {
  readonly method: string;
  readonly path: string;
}

export interface Slo {
  readonly scenario: string;
  readonly routes: readonly Route[];
  /** Target availability as a ratio, e.g. 0.9995. */
  readonly availability: number;
  readonly latencyThresholdMs: number;
  /** Share of requests that must finish under the threshold, e.g. 0.99. */
  readonly latencyPercentile: number;
  /** Whether the scenario writes (needs the cell primary and its synchronous quorum). */
  readonly writes: boolean;
  /** External dependencies this scenario needs: the service's own plus the scenario's. */
  readonly dependencies: readonly string[];
  /** Whether the service's fallback can serve this scenario (all its routes are fallback routes). */
  readonly fallbackCovers: boolean;
  /** Whether routers hedge idempotent reads of this scenario to another region after its p95 latency. */
  readonly hedge: boolean;
}

export interface Fallback {
  readonly command: readonly string[];
  readonly routes: readonly Route[];
  readonly instancesPerRegion: number;
}

export type Durability = "strict" | "available";

export interface Service {
  readonly name: string;
  readonly command: readonly string[];
  readonly healthPath: string;
  /** Instances per cell per region. */
  readonly instancesPerRegion: number;
  readonly capacityRps: number;
  readonly peakRps: number | undefined;
  readonly tier: number;
  readonly rtoMs: number;
  readonly rpoMs: number;
  /**
   * The policy this service asks for, as written. A cell holds every service's data, so what the
   * runtime applies and the planner assumes is the cells' policy, `topology.failover.durability`.
   */
  readonly durability: Durability;
  readonly downtimeCostPerHour: number | undefined;
  readonly slos: readonly Slo[];
  readonly fallback: Fallback | undefined;
}

export interface Provider {
  readonly name: string;
  readonly availability: number;
  readonly costPerMonth: number | undefined;
}

export interface Dependency {
  readonly name: string;
  readonly providers: readonly Provider[];
}

export interface NotificationChannel {
  readonly name: string;
  readonly kind: "webhook" | "email";
  readonly providers: readonly {
    readonly name: string;
    readonly availability: number;
    readonly url: string | undefined;
    readonly host: string | undefined;
    readonly port: number | undefined;
  }[];
}

export interface Reliability {
  /** Steady-state availability, mtbf / (mtbf + mttr). */
  readonly availability: number;
  readonly mtbfMs: number;
  readonly mttrMs: number;
}

export interface Topology {
  readonly name: string;
  /** Where it was loaded from: a path, or `bundled:NAME`. */
  readonly source: string;
  readonly regions: readonly Region[];
  readonly zones: readonly Zone[];
  readonly cells: {
    readonly count: number;
    readonly replicas: number;
    readonly buckets: number;
    readonly syncQuorum: number;
    readonly list: readonly Cell[];
  };
  readonly routers: {
    readonly perRegion: number;
    readonly tenantHeader: string;
    readonly tenantPathPrefix: string | undefined;
    readonly maxInFlightPerCell: number;
    readonly tryTimeoutMs: number;
    readonly deadlineMs: number;
    readonly maxAttempts: number;
    readonly lastKnownGoodTtlMs: number;
  };
  readonly services: readonly Service[];
  readonly dependencies: readonly Dependency[];
  readonly notifications: readonly NotificationChannel[];
  readonly components: Readonly<Record<ComponentKind, Reliability>>;
  readonly costs: {
    readonly instancePerMonth: number | undefined;
    readonly routerPerMonth: number | undefined;
    readonly databasePerMonth: number | undefined;
  };
  readonly failover: {
    /** `failover.detection` as written: the longest the runtime may take to declare a primary down. */
    readonly detectionMs: number;
    /** What the runtime does to meet `detectionMs` (src/failover/settings.ts); the planner reads it too. */
    readonly detection: DetectionSettings;
    /** `failover.promotion`: from the verdict to the new primary serving writes. */
    readonly promotionMs: number;
    /**
     * How long the controller waits for every standby's position before it decides with those that
     * answered: the promotion budget (standbys report within a fenced tick, ~200 ms, when they can).
     */
    readonly positionWaitMs: number;
    /**
     * The cells' durability policy: `available` only when every service asks for it (a cell holds
     * every service's data). What the controller applies and what the planner assumes.
     */
    readonly durability: Durability;
    /**
     * Under `available`, how long a primary left without a streaming standby waits before going
     * asynchronous: `failover.detection` (losing the standbys is declared like losing a primary).
     */
    readonly asyncAfterMs: number;
    /** Whether a cell moves back to its home region on its own once that is healthy again. */
    readonly failback: "automatic" | "manual";
    /** How long the home region must have been healthy and caught up before failback. */
    readonly failbackAfterMs: number;
    /** Cells (by index) that fail back only when an operator switches them over. */
    readonly manualFailback: readonly number[];
    /**
     * `failover.startupGrace`: after the controller starts, how long a primary that no report has yet
     * shown up is not declared failed (a starting world's databases are still being created and
     * started, and a starved machine makes their first probes time out).
     */
    readonly startupGraceMs: number;
  };
  readonly load: { readonly tenants: number };
  readonly objectives: { readonly blastRadius: number | undefined };
}
