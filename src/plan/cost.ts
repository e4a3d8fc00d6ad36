/**
 * Business impact and the cost of redundancy. For each redundancy (a second instance per region, a
 * replica region, a second router, a second provider) the plan removes it, recomputes the
 * availability of every scenario, and sets its yearly cost against the downtime cost it avoids.
 */
import { YEAR_MS } from "../lib/units.js";
import type { Cell, Topology } from "../topology/model.js";
import { BlockEvaluator } from "./blocks.js";
import { availabilityOf, buildModel, ids, type PlanModel } from "./model.js";

const HOURS_PER_YEAR = YEAR_MS / 3_600_000;

export interface TierRow {
  readonly tier: number;
  readonly services: readonly string[];
  readonly rtoMs: number;
  readonly rpoMs: number;
  readonly downtimeCostPerHour: number | undefined;
}

export interface RedundancyValue {
  readonly redundancy: string;
  /** Yearly cost of the redundancy, when the topology gives unit costs. */
  readonly costPerYear: number | undefined;
  /** Expected downtime cost per year it avoids, when services give a downtime cost. */
  readonly avoidedPerYear: number | undefined;
  /** Expected downtime it avoids, in minutes per year (worst affected service). */
  readonly avoidedMinutesPerYear: number;
  readonly worthIt: boolean | undefined;
}

export interface CostReport {
  readonly tiers: readonly TierRow[];
  readonly redundancies: readonly RedundancyValue[];
}

export function tierTable(topology: Topology): TierRow[] {
  const tiers = [...new Set(topology.services.map((s) => s.tier))].sort((a, b) => a - b);
  return tiers.map((tier) => {
    const services = topology.services.filter((s) => s.tier === tier);
    const costs = services.map((s) => s.downtimeCostPerHour).filter((c): c is number => c !== undefined);
    return {
      tier,
      services: services.map((s) => s.name),
      rtoMs: Math.min(...services.map((s) => s.rtoMs)),
      rpoMs: Math.min(...services.map((s) => s.rpoMs)),
      downtimeCostPerHour: costs.length > 0 ? costs.reduce((a, b) => a + b, 0) : undefined,
    };
  });
}

/**
 * Unavailability of each service (its worst scenario, tenant-weighted), with component occurrences
 * taken as independent: a consistent yardstick for the difference a redundancy makes, at a fraction
 * of the cost of conditioning on shared regions. `overrides` sets components' availability (0 takes
 * a redundant component away); only the scenarios of `services` are evaluated when given.
 */
function serviceUnavailability(
  model: PlanModel,
  overrides?: ReadonlyMap<string, number>,
  services?: ReadonlySet<string>,
): Map<string, number> {
  const evaluator = new BlockEvaluator(availabilityOf(model, overrides));
  const result = new Map<string, number>();
  for (const s of model.scenarios) {
    if (services && !services.has(s.service.name)) continue;
    const a = s.cells.reduce((sum, c) => sum + evaluator.plain(c.block) * c.cell.tenantShare, 0);
    result.set(s.service.name, Math.max(result.get(s.service.name) ?? 0, 1 - a));
  }
  return result;
}

/** A redundancy taken away: components set to 0 in the same model, or a rebuilt topology. */
type Without =
  | { readonly overrides: ReadonlyMap<string, number>; readonly services?: ReadonlySet<string> }
  | { readonly topology: Topology };

export function costReport(topology: Topology): CostReport {
  const model = buildModel(topology);
  const base = serviceUnavailability(model);
  const redundancies: RedundancyValue[] = [];
  const cellRegions = topology.cells.count * topology.cells.replicas;
  const value = (
    redundancy: string,
    without: Without,
    costPerMonth: number | undefined,
    units: number,
  ): RedundancyValue => {
    const after =
      "topology" in without
        ? serviceUnavailability(buildModel(without.topology))
        : serviceUnavailability(model, without.overrides, without.services);
    let avoided: number | undefined;
    let minutes = 0;
    for (const s of topology.services) {
      const delta = Math.max(0, (after.get(s.name) ?? base.get(s.name) ?? 0) - (base.get(s.name) ?? 0));
      minutes = Math.max(minutes, delta * HOURS_PER_YEAR * 60);
      if (s.downtimeCostPerHour !== undefined)
        avoided = (avoided ?? 0) + delta * HOURS_PER_YEAR * s.downtimeCostPerHour;
    }
    const costPerYear = costPerMonth === undefined ? undefined : costPerMonth * units * 12;
    return {
      redundancy,
      costPerYear,
      avoidedPerYear: avoided,
      avoidedMinutesPerYear: minutes,
      worthIt: costPerYear === undefined || avoided === undefined ? undefined : avoided >= costPerYear,
    };
  };
  const down = (idList: string[]) => new Map(idList.map((id) => [id, 0]));

  for (const s of topology.services) {
    const n = s.instancesPerRegion;
    if (n >= 2) {
      const last = topology.cells.list.flatMap((c) =>
        c.regions.map((r) => ids.instance(s.name, c.id, r, n - 1)),
      );
      redundancies.push(
        value(
          `${s.name}: instance ${n} of ${n} per cell and region`,
          { overrides: down(last), services: new Set([s.name]) },
          topology.costs.instancePerMonth,
          cellRegions,
        ),
      );
    }
  }
  if (topology.cells.replicas >= 2) {
    // Structural: the write quorum shrinks with the replicas, so the model is rebuilt.
    const replicas = topology.cells.replicas - 1;
    const list: Cell[] = topology.cells.list.map((c) => ({ ...c, regions: c.regions.slice(0, replicas) }));
    const fewer: Topology = {
      ...topology,
      cells: {
        ...topology.cells,
        replicas,
        syncQuorum: Math.min(topology.cells.syncQuorum, replicas - 1),
        list,
      },
    };
    const instances = topology.services.reduce(
      (sum, s) => sum + s.instancesPerRegion + (s.fallback?.instancesPerRegion ?? 0),
      0,
    );
    const perCellRegion =
      (topology.costs.databasePerMonth ?? 0) + instances * (topology.costs.instancePerMonth ?? 0);
    redundancies.push(
      value(
        `replica region ${topology.cells.replicas} of ${topology.cells.replicas} per cell`,
        { topology: fewer },
        topology.costs.databasePerMonth === undefined && topology.costs.instancePerMonth === undefined
          ? undefined
          : perCellRegion,
        topology.cells.count,
      ),
    );
  }
  const routers = topology.routers.perRegion;
  if (routers >= 2) {
    redundancies.push(
      value(
        `router ${routers} of ${routers} per region`,
        { overrides: down(topology.regions.map((r) => ids.router(r.name, routers - 1))) },
        topology.costs.routerPerMonth,
        topology.regions.length,
      ),
    );
  }
  for (const dep of topology.dependencies) {
    const last = dep.providers[dep.providers.length - 1];
    if (dep.providers.length < 2 || !last) continue;
    const users = topology.services.filter((s) => s.slos.some((slo) => slo.dependencies.includes(dep.name)));
    redundancies.push(
      value(
        `${dep.name}: provider ${last.name}`,
        { overrides: down([ids.provider(dep.name, last.name)]), services: new Set(users.map((s) => s.name)) },
        last.costPerMonth,
        1,
      ),
    );
  }
  return { tiers: tierTable(topology), redundancies };
}
