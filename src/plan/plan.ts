/**
 * `ringfence plan`: judges a topology before it runs. Pure: takes a compiled topology, returns a
 * report that `render.ts` prints and `--json` emits as is.
 */
import type { Topology } from "../topology/model.js";
import { compositeAvailability, type ScenarioAvailability } from "./availability.js";
import { type BlastRadiusReport, blastRadius } from "./blast.js";
import { type CapacityReport, capacity } from "./capacity.js";
import { type CostReport, costReport } from "./cost.js";
import { buildModel } from "./model.js";
import { objectives, type ServiceObjectives } from "./objectives.js";
import { type SimulationResult, simulate } from "./simulate.js";
import { type SinglePointOfFailure, singlePointsOfFailure } from "./spof.js";

/**
 * Checks that `--fail-on` can gate on. `objectives` covers every service's RTO and RPO and the
 * topology's `objectives.blastRadius`.
 */
export const GATES = ["spof", "objectives", "capacity", "availability"] as const;
export type Gate = (typeof GATES)[number];

export interface PlanReport {
  readonly topology: {
    readonly name: string;
    readonly source: string;
    readonly regions: number;
    readonly zones: number;
    readonly cells: number;
    readonly replicas: number;
    readonly syncQuorum: number;
    readonly buckets: number;
    readonly services: number;
    readonly tenants: number;
  };
  readonly availability: readonly ScenarioAvailability[];
  readonly blastRadius: BlastRadiusReport;
  readonly singlePointsOfFailure: readonly SinglePointOfFailure[];
  readonly capacity: Omit<CapacityReport, "shortfallOf">;
  readonly objectives: readonly ServiceObjectives[];
  readonly cost: CostReport;
  readonly simulation: SimulationResult | undefined;
  /** Whether each gate passes. */
  readonly checks: Readonly<Record<Gate, boolean>>;
}

export interface PlanOptions {
  /** Simulated years for the Monte Carlo estimate; none when 0 or unset. */
  readonly simulateYears?: number;
  readonly seed?: number;
  readonly onSimulationProgress?: (yearsDone: number, years: number) => void;
}

export function plan(topology: Topology, options: PlanOptions = {}): PlanReport {
  const model = buildModel(topology);
  const availability = compositeAvailability(model);
  const cap = capacity(topology);
  const blast = blastRadius(model, cap.shortfallOf);
  const spof = singlePointsOfFailure(model);
  const objs = objectives(topology);
  const cost = costReport(topology);
  const simulation =
    options.simulateYears && options.simulateYears > 0
      ? simulate(model, {
          years: options.simulateYears,
          seed: options.seed ?? 1,
          ...(options.onSimulationProgress ? { onProgress: options.onSimulationProgress } : {}),
        })
      : undefined;
  const { shortfallOf: _, ...capacityReport } = cap;
  return {
    topology: {
      name: topology.name,
      source: topology.source,
      regions: topology.regions.length,
      zones: topology.zones.length,
      cells: topology.cells.count,
      replicas: topology.cells.replicas,
      syncQuorum: topology.cells.syncQuorum,
      buckets: topology.cells.buckets,
      services: topology.services.length,
      tenants: topology.load.tenants,
    },
    availability,
    blastRadius: blast,
    singlePointsOfFailure: spof,
    capacity: capacityReport,
    objectives: objs,
    cost,
    simulation,
    checks: {
      spof: spof.filter((s) => s.kind !== "notification").length === 0,
      objectives:
        objs.every((o) => o.rtoMet && o.rpoMet) &&
        (blast.target === undefined || blast.worstCellShare <= blast.target + 1e-12),
      capacity: cap.ok,
      availability: availability.every((a) => a.meetsTarget),
    },
  };
}

/** The gates among `gates` that fail in `report`. */
export function failedGates(report: PlanReport, gates: readonly Gate[]): Gate[] {
  return gates.filter((g) => !report.checks[g]);
}
