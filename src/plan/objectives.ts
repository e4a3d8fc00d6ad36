/**
 * Objectives: can the design meet each service's RTO and RPO, and what is missing when it cannot?
 *
 * - RPO 0 needs synchronous out-of-region commit (syncQuorum ≥ 1) that never silently degrades
 *   (durability: strict). Asynchronous replication can lose its replication lag.
 * - Writes survive a region loss only with replicas ≥ syncQuorum + 2 (the new primary still needs
 *   syncQuorum out-of-region standbys); otherwise writes wait for the region to come back.
 * - Recovery from a primary loss takes failure detection + promotion.
 */
import { formatDuration } from "../lib/units.js";
import type { Service, Topology } from "../topology/model.js";

/** The replication lag asynchronous replication is assumed to lose at worst. */
export const ASYNC_LAG_MS = 1_000;

export interface ServiceObjectives {
  readonly service: string;
  readonly tier: number;
  readonly rtoMs: number;
  /** Estimated worst-case time to recover writes after the loss of a primary, zone or region. */
  readonly estimatedRtoMs: number;
  readonly rtoMet: boolean;
  readonly rpoMs: number;
  /** Worst-case loss of acknowledged writes the design allows, in milliseconds of writes. */
  readonly designRpoMs: number;
  readonly rpoMet: boolean;
  readonly writesSurviveRegionLoss: boolean;
  /** What is missing, each with how to fix it. */
  readonly missing: readonly string[];
}

export function objectives(topology: Topology): ServiceObjectives[] {
  return topology.services.map((s) => assessService(topology, s));
}

function assessService(topology: Topology, service: Service): ServiceObjectives {
  const { syncQuorum, replicas } = topology.cells;
  const missing: string[] = [];
  const writes = service.slos.some((slo) => slo.writes);
  // The cells' policy, not the service's wish: a cell is `available` only when every service is.
  const durability = topology.failover.durability;
  const synchronous = syncQuorum >= 1 && durability === "strict";
  const designRpoMs = synchronous ? 0 : ASYNC_LAG_MS;
  const rpoMet = service.rpoMs >= designRpoMs;
  if (!rpoMet) {
    if (syncQuorum < 1) {
      missing.push(
        "RPO 0 needs synchronous out-of-region commit: set cells.syncQuorum ≥ 1 (with replicas ≥ 2)",
      );
    }
    if (durability === "available") {
      missing.push(
        "durability: available drops to asynchronous commit when no out-of-region standby is left; use strict for RPO 0",
      );
    }
  }
  const failoverMs = topology.failover.detectionMs + topology.failover.promotionMs;
  const quorumAfterLoss = durability === "strict" ? syncQuorum + 1 : 1;
  const writesSurviveRegionLoss = !writes || replicas - 1 >= quorumAfterLoss;
  let estimatedRtoMs = writes ? failoverMs : topology.failover.detectionMs;
  if (replicas < 2) {
    estimatedRtoMs = topology.components.region.mttrMs;
    missing.push(
      `with one replica region a region loss stops the service until the region returns (≈ ${formatDuration(estimatedRtoMs)}): raise cells.replicas`,
    );
  } else if (!writesSurviveRegionLoss) {
    estimatedRtoMs = Math.max(estimatedRtoMs, topology.components.region.mttrMs);
    missing.push(
      `writes stop when a region fails until it returns (≈ ${formatDuration(topology.components.region.mttrMs)}): writes that survive a region loss need replicas in ≥ ${syncQuorum + 2} regions (have ${replicas})`,
    );
  }
  const rtoMet = service.rtoMs >= estimatedRtoMs;
  if (!rtoMet && writesSurviveRegionLoss && replicas >= 2) {
    missing.push(
      `failover takes ≈ ${formatDuration(failoverMs)} (detection ${formatDuration(topology.failover.detectionMs)} + promotion ${formatDuration(topology.failover.promotionMs)}), longer than the RTO of ${formatDuration(service.rtoMs)}: shorten failover.detection or relax rto`,
    );
  }
  return {
    service: service.name,
    tier: service.tier,
    rtoMs: service.rtoMs,
    estimatedRtoMs,
    rtoMet,
    rpoMs: service.rpoMs,
    designRpoMs,
    rpoMet,
    writesSurviveRegionLoss,
    missing,
  };
}
