/**
 * Blast radius: the share of tenants and of peak load that a single failure reaches. `exposed`
 * tenants have something of theirs in the failed unit (they see retries or a failover); `lost`
 * tenants lose at least one scenario until the unit is repaired, because nothing redundant covers it.
 */
import { BlockEvaluator, componentCounts } from "./blocks.js";
import { availabilityOf, type CatalogKind, type PlanModel } from "./model.js";

export type FailureUnit = "instance" | "zone" | "region" | "cell";

export interface BlastRadius {
  readonly unit: FailureUnit;
  /** The worst unit of this kind, e.g. `zone:us-east/a`. */
  readonly worst: string;
  readonly exposedTenants: number;
  readonly lostTenants: number;
  /** Share of peak load lost: the lost tenants' load plus load the survivors cannot carry. */
  readonly lostLoad: number;
}

export interface BlastRadiusReport {
  readonly units: readonly BlastRadius[];
  /** Largest share of tenants in one cell (what one cell-wide failure reaches). */
  readonly worstCellShare: number;
  readonly target: number | undefined;
  /** Cells needed so that one cell failure reaches at most the target (or 10%, 5%, 1% when unset). */
  readonly cellsForTarget: readonly { target: number; cells: number }[];
}

/** Share of tenants in the largest cell when `buckets` are spread over `cells` as evenly as possible. */
export function cellFailureShare(buckets: number, cells: number): number {
  return Math.ceil(buckets / cells) / buckets;
}

/** The fewest cells (≤ buckets) for which one cell failure reaches at most `target` of tenants. */
export function cellsNeeded(buckets: number, target: number): number {
  if (target <= 0) return buckets;
  // Smallest c with ceil(B/c) ≤ floor(target·B), i.e. c ≥ B / floor(target·B).
  const perCell = Math.floor(target * buckets + 1e-9);
  if (perCell < 1) return buckets;
  return Math.min(buckets, Math.ceil(buckets / perCell));
}

const UNIT_KIND: Record<Exclude<FailureUnit, "cell">, CatalogKind> = {
  instance: "instance",
  zone: "zone",
  region: "region",
};

/**
 * Worst case of each failure unit. `shortfall(unitId)` gives the share of peak load the survivors
 * cannot carry after that unit fails (from the capacity analysis); zero when not given.
 */
export function blastRadius(
  model: PlanModel,
  shortfall: (unitId: string) => number = () => 0,
): BlastRadiusReport {
  const { topology } = model;
  const evaluator = new BlockEvaluator(availabilityOf(model));
  // Which cells' own components (instances, replicas: not the routers every cell shares) are where.
  const usedBy = new Map<string, Set<number>>();
  for (const s of model.scenarios) {
    for (const c of s.cells) {
      const own = c.block.kind === "series" ? c.block.children.filter((b) => b !== model.routers) : [c.block];
      for (const id of own.flatMap((b) => [...componentCounts(b).keys()])) {
        const set = usedBy.get(id) ?? new Set<number>();
        usedBy.set(id, set);
        set.add(c.cell.index);
      }
    }
  }
  const units: BlastRadius[] = [];
  for (const unit of ["instance", "zone", "region"] as const) {
    let worst: BlastRadius | undefined;
    for (const entry of model.catalog.values()) {
      if (entry.kind !== UNIT_KIND[unit]) continue;
      const cells = usedBy.get(entry.id) ?? new Set<number>();
      const down = new Set([entry.id]);
      let exposed = 0;
      let lost = 0;
      for (const index of cells) {
        const cell = topology.cells.list[index];
        if (!cell) continue;
        exposed += cell.tenantShare;
        const broken = model.scenarios.some((s) => {
          const cs = s.cells[index];
          return cs !== undefined && !evaluator.survives(cs.block, down);
        });
        if (broken) lost += cell.tenantShare;
      }
      const lostLoad = Math.min(1, lost + (1 - lost) * shortfall(entry.id));
      const candidate = { unit, worst: entry.id, exposedTenants: exposed, lostTenants: lost, lostLoad };
      if (worst === undefined || rank(candidate) > rank(worst)) worst = candidate;
    }
    if (worst) units.push(worst);
  }
  const worstCellShare = cellFailureShare(topology.cells.buckets, topology.cells.count);
  const biggest = topology.cells.list.reduce((a, b) => (b.tenantShare > a.tenantShare ? b : a));
  units.push({
    unit: "cell",
    worst: biggest.id,
    exposedTenants: worstCellShare,
    lostTenants: worstCellShare,
    lostLoad: worstCellShare,
  });
  const targets =
    topology.objectives.blastRadius !== undefined ? [topology.objectives.blastRadius] : [0.1, 0.05, 0.01];
  return {
    units,
    worstCellShare,
    target: topology.objectives.blastRadius,
    cellsForTarget: targets.map((target) => ({ target, cells: cellsNeeded(topology.cells.buckets, target) })),
  };
}

function rank(b: BlastRadius): number {
  return b.lostTenants * 4 + b.lostLoad * 2 + b.exposedTenants;
}
