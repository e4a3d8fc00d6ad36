/**
 * Which zone of a region hosts something, shared by the planner's model and the local world.
 */
import type { Topology } from "../topology/model.js";

/** The id of zone `index mod zones` of `region`, e.g. `us-east/b`. */
export function zoneOfIndex(topology: Topology, region: string, index: number): string {
  const r = topology.regions.find((x) => x.name === region);
  if (!r || r.zones.length === 0) throw new Error(`unknown region ${region}`);
  return (r.zones[index % r.zones.length] as (typeof r.zones)[number]).id;
}
