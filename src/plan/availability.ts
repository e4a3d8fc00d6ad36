/**
 * Composite availability of every SLO scenario: per cell (exact over shared regions and zones),
 * the worst cell, the tenant-weighted mean, and the chain of the worst cell link by link with the
 * link that costs the most nines.
 */
import { nines } from "../lib/units.js";
import { type Block, BlockEvaluator } from "./blocks.js";
import { availabilityOf, type PlanModel } from "./model.js";

/** Replica regions per cell conditioned on exactly; more would cost 2^n passes for nothing visible. */
const MAX_CONDITIONED_REGIONS = 5;

export interface ChainLink {
  readonly label: string;
  readonly availability: number;
  readonly nines: number;
  /** Share of the chain's unavailability that this link accounts for (links taken as independent). */
  readonly unavailabilityShare: number;
}

export interface ScenarioAvailability {
  readonly service: string;
  readonly scenario: string;
  readonly writes: boolean;
  readonly target: number;
  /** Tenant-weighted mean over cells. */
  readonly availability: number;
  readonly worstCell: string;
  readonly worstCellAvailability: number;
  readonly meetsTarget: boolean;
  readonly chain: readonly ChainLink[];
  readonly weakestLink: string;
}

export function blockLabel(block: Block, model: PlanModel): string {
  return block.kind === "component" ? (model.catalog.get(block.id)?.label ?? block.id) : block.label;
}

export function compositeAvailability(model: PlanModel): ScenarioAvailability[] {
  const evaluator = new BlockEvaluator(availabilityOf(model));
  // Condition on the regions a path shares between its links (a region takes its instances, routers
  // and database replica down together); other shared components change results by < 1e-9.
  const exact = (b: Block) =>
    evaluator.exact(b, MAX_CONDITIONED_REGIONS, (id) => (id.startsWith("region:") ? 1 : 0));
  return model.scenarios.map(({ service, slo, cells }) => {
    let mean = 0;
    let worst = cells[0];
    let worstValue = Number.POSITIVE_INFINITY;
    for (const c of cells) {
      const a = exact(c.block);
      mean += a * c.cell.tenantShare;
      if (a < worstValue) {
        worstValue = a;
        worst = c;
      }
    }
    const links = worst && worst.block.kind === "series" ? worst.block.children : worst ? [worst.block] : [];
    const values = links.map((l) => exact(l));
    const totalDown = values.reduce((s, v) => s + (1 - v), 0);
    const chain = links.map((l, i) => {
      const a = values[i] as number;
      return {
        label: blockLabel(l, model),
        availability: a,
        nines: nines(a),
        unavailabilityShare: totalDown > 0 ? (1 - a) / totalDown : 0,
      };
    });
    const weakest = chain.reduce<ChainLink | undefined>(
      (w, l) => (w === undefined || l.availability < w.availability ? l : w),
      undefined,
    );
    return {
      service: service.name,
      scenario: slo.scenario,
      writes: slo.writes,
      target: slo.availability,
      availability: mean,
      worstCell: worst?.cell.id ?? "",
      worstCellAvailability: worstValue,
      meetsTarget: worstValue >= slo.availability,
      chain,
      weakestLink: weakest?.label ?? "",
    };
  });
}
