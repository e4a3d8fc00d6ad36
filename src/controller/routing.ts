/**
 * The routing table routers fetch (`GET /v1/routing`). Pure: built from a store snapshot.
 *
 * `version` is the world's desired-state version, which grows with every change to cells (primary,
 * epoch, fencing), restart nonces, drains or the bucket table; a router that has `version` has the
 * table's configuration. `health` is live observation, not versioned: it is as of `generatedAt`.
 */
import type { Health, RoutingTable } from "../world/contracts.js";
import { Observations } from "./observations.js";
import type { Snapshot } from "./store.js";
import { processId, type WorldIndex } from "./world-index.js";

export function buildRoutingTable(
  index: WorldIndex,
  snapshot: Snapshot,
  nowMs: number,
  heartbeatTimeoutMs: number,
): RoutingTable {
  const seen = new Observations(snapshot.agents, snapshot.routers, nowMs, heartbeatTimeoutMs);
  const health: Record<string, Health> = {};
  // Keyed by the layout's instance id (`directory/cell-0/us-east/1`), which is what routers route to.
  for (const slot of index.layout.instances) health[slot.id] = seen.health(processId("instance", slot.id));
  return {
    version: snapshot.desiredVersion,
    generatedAt: new Date(nowMs).toISOString(),
    buckets: index.topology.cells.buckets,
    bucketTable: snapshot.bucketTable.runs,
    cells: index.orderCells(snapshot.cells),
    health,
    drains: snapshot.drains,
  };
}

/**
 * What a table says, without when it was generated: two tables with the same content key route
 * identically, so a stream pushes a table only when its content key changed.
 */
export function routingContentKey(table: RoutingTable): string {
  const { generatedAt: _generatedAt, ...content } = table;
  return JSON.stringify(content);
}
