/**
 * Capacity headroom: can the instances left after losing the largest zone, or the largest region,
 * carry the peak load with no new capacity? Cells are isolated, so spare capacity in one cell does
 * not help another: utilisation is computed per cell and region and the worst one decides.
 *
 * Load model: a service's peak load is spread over cells by tenant share and over client regions by
 * traffic share; clients are served in the nearest live region of their cell; a zone failure
 * removes its instances and leaves the load in the region unless the cell has none left there.
 */
import type { Service, Topology } from "../topology/model.js";

export interface RegionUtilisation {
  readonly region: string;
  readonly demandRps: number;
  readonly capacityRps: number;
  readonly utilisation: number;
}

export interface CapacityCase {
  /** `normal`, or the id of the failed zone or region. */
  readonly lost: string;
  /** Highest utilisation of any cell in any region. */
  readonly maxUtilisation: number;
  readonly worstCellRegion: string;
  /** Share of peak load that has a live path but no capacity left to serve it. */
  readonly shortfall: number;
  readonly regions: readonly RegionUtilisation[];
}

export interface ServiceCapacity {
  readonly service: string;
  readonly peakRps: number;
  readonly normal: CapacityCase;
  readonly worstZone: CapacityCase | undefined;
  readonly worstRegion: CapacityCase | undefined;
  /** True when utilisation stays at or below 100% after the worst zone and the worst region loss. */
  readonly ok: boolean;
}

export interface CapacityReport {
  readonly services: readonly ServiceCapacity[];
  readonly ok: boolean;
  /** Services without `peakRps`, whose capacity was not checked. */
  readonly unchecked: readonly string[];
  /** Share of all services' peak load lost to shortfall when a zone or region (by component id) fails. */
  readonly shortfallOf: (unitId: string) => number;
}

export function capacity(topology: Topology): CapacityReport {
  const checked = topology.services.filter((s) => s.peakRps !== undefined && s.peakRps > 0);
  const totalPeak = checked.reduce((sum, s) => sum + (s.peakRps ?? 0), 0);
  const shortfalls = new Map<string, number>();
  const services = checked.map((service) => {
    const peak = service.peakRps ?? 0;
    const normal = assess(topology, service, new Set(), new Set(), "normal");
    let worstZone: CapacityCase | undefined;
    for (const zone of topology.zones) {
      const c = assess(topology, service, new Set([zone.id]), new Set(), `zone:${zone.id}`);
      shortfalls.set(c.lost, (shortfalls.get(c.lost) ?? 0) + (c.shortfall * peak) / totalPeak);
      if (!worstZone || worse(c, worstZone)) worstZone = c;
    }
    let worstRegion: CapacityCase | undefined;
    if (topology.regions.length > 1) {
      for (const region of topology.regions) {
        const c = assess(topology, service, new Set(), new Set([region.name]), `region:${region.name}`);
        shortfalls.set(c.lost, (shortfalls.get(c.lost) ?? 0) + (c.shortfall * peak) / totalPeak);
        if (!worstRegion || worse(c, worstRegion)) worstRegion = c;
      }
    }
    const ok = [normal, worstZone, worstRegion].every((c) => c === undefined || c.maxUtilisation <= 1);
    return { service: service.name, peakRps: peak, normal, worstZone, worstRegion, ok };
  });
  return {
    services,
    ok: services.every((s) => s.ok),
    unchecked: topology.services.filter((s) => !checked.includes(s)).map((s) => s.name),
    shortfallOf: (id) => shortfalls.get(id) ?? 0,
  };
}

function worse(a: CapacityCase, b: CapacityCase): boolean {
  return a.shortfall > b.shortfall || (a.shortfall === b.shortfall && a.maxUtilisation > b.maxUtilisation);
}

/** Utilisation of one service with some zones and regions down. */
export function assess(
  topology: Topology,
  service: Service,
  downZones: ReadonlySet<string>,
  downRegions: ReadonlySet<string>,
  lost: string,
): CapacityCase {
  const peak = service.peakRps ?? 0;
  const demand = new Map<string, number>();
  const cap = new Map<string, number>();
  let maxUtilisation = 0;
  let worstCellRegion = "";
  let short = 0;
  for (const cell of topology.cells.list) {
    const load = peak * cell.tenantShare;
    const live = new Map<string, number>();
    for (const regionName of cell.regions) {
      if (downRegions.has(regionName)) continue;
      const region = topology.regions.find((r) => r.name === regionName);
      if (!region) continue;
      let alive = 0;
      for (let i = 0; i < service.instancesPerRegion; i++) {
        const zone = region.zones[i % region.zones.length];
        if (zone && !downZones.has(zone.id)) alive++;
      }
      if (alive > 0) live.set(regionName, alive * service.capacityRps);
    }
    if (live.size === 0) continue; // no path at all: counted as lost tenants, not as shortfall
    const cellDemand = new Map<string, number>();
    for (const origin of topology.regions) {
      let target = "";
      let best = Number.POSITIVE_INFINITY;
      for (const r of live.keys()) {
        const latency = r === origin.name ? 0 : (origin.latencyMs[r] ?? Number.POSITIVE_INFINITY);
        if (latency < best || (latency === best && r < target)) {
          best = latency;
          target = r;
        }
      }
      cellDemand.set(target, (cellDemand.get(target) ?? 0) + load * origin.trafficShare);
    }
    for (const [r, capacityRps] of live) {
      const d = cellDemand.get(r) ?? 0;
      demand.set(r, (demand.get(r) ?? 0) + d);
      cap.set(r, (cap.get(r) ?? 0) + capacityRps);
      const u = d / capacityRps;
      if (u > maxUtilisation) {
        maxUtilisation = u;
        worstCellRegion = `${cell.id} in ${r}`;
      }
      short += Math.max(0, d - capacityRps);
    }
  }
  const regions = topology.regions.map((r) => {
    const d = demand.get(r.name) ?? 0;
    const c = cap.get(r.name) ?? 0;
    return { region: r.name, demandRps: d, capacityRps: c, utilisation: c > 0 ? d / c : 0 };
  });
  return { lost, maxUtilisation, worstCellRegion, shortfall: peak > 0 ? short / peak : 0, regions };
}
