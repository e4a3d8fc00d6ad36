/**
 * Single points of failure: every component whose failure alone breaks a scenario for some
 * tenants, found by failing each component of each scenario's block with everything else up.
 * Notification channels with a single provider are reported too: they are not on the request path,
 * but an outage nobody hears about is its own failure.
 */
import { BlockEvaluator } from "./blocks.js";
import { availabilityOf, type CatalogEntry, type PlanModel } from "./model.js";

export interface SinglePointOfFailure {
  readonly component: string;
  readonly kind: string;
  readonly label: string;
  /** `service/scenario` entries it breaks. */
  readonly scenarios: readonly string[];
  /** Share of tenants who lose a scenario when it fails. */
  readonly tenants: number;
  readonly fix: string;
}

export function singlePointsOfFailure(model: PlanModel): SinglePointOfFailure[] {
  const found = new Map<
    string,
    { entry: CatalogEntry; scenarios: Set<string>; cells: Set<number>; writesOnly: boolean }
  >();
  const evaluator = new BlockEvaluator(availabilityOf(model));
  for (const s of model.scenarios) {
    const name = `${s.service.name}/${s.slo.scenario}`;
    for (const c of s.cells) {
      for (const id of evaluator.idsOf(c.block)) {
        const entry = model.catalog.get(id);
        // A failover window is transitional, not a component that can be made redundant.
        if (!entry || entry.kind === "failover") continue;
        if (evaluator.survives(c.block, new Set([id]))) continue;
        let f = found.get(id);
        if (!f) {
          f = { entry, scenarios: new Set(), cells: new Set(), writesOnly: true };
          found.set(id, f);
        }
        f.scenarios.add(name);
        f.cells.add(c.cell.index);
        if (!s.slo.writes) f.writesOnly = false;
      }
    }
  }
  const { topology } = model;
  const result: SinglePointOfFailure[] = [...found.values()].map(
    ({ entry, scenarios, cells, writesOnly }) => ({
      component: entry.id,
      kind: entry.kind,
      label: entry.label,
      scenarios: [...scenarios].sort(),
      tenants: [...cells].reduce((s, i) => s + (topology.cells.list[i]?.tenantShare ?? 0), 0),
      fix: fixFor(entry, writesOnly, model),
    }),
  );
  for (const channel of topology.notifications) {
    if (channel.providers.length < 2) {
      result.push({
        component: `notification:${channel.name}`,
        kind: "notification",
        label: `notification channel ${channel.name}`,
        scenarios: [],
        tenants: 0,
        fix: `channel ${channel.name} has one provider: add a second ${channel.kind} provider so notifications fail over`,
      });
    }
  }
  return result.sort((a, b) => b.tenants - a.tenants || a.component.localeCompare(b.component));
}

function fixFor(entry: CatalogEntry, writesOnly: boolean, model: PlanModel): string {
  const { cells } = model.topology;
  switch (entry.kind) {
    case "provider": {
      const dep = entry.id.slice("provider:".length).split("/")[0];
      return `dependency ${dep} has one provider: add a second, independent provider`;
    }
    case "region":
      if (writesOnly) {
        return `writes need ${cells.syncQuorum + 1} of ${cells.replicas} replica regions up; with syncQuorum ${cells.syncQuorum}, writes survive a region loss only with replicas ≥ ${cells.syncQuorum + 2} (or durability: available, which gives up RPO 0)`;
      }
      return `cells run in ${cells.replicas} region(s): raise cells.replicas so another region can serve`;
    case "zone":
      return "everything this path needs in one region sits in this zone: raise instances so they spread over zones, or add regions";
    case "database":
      return "the cell has a single database replica: raise cells.replicas";
    case "router":
      return "one router carries every request: raise routers.perRegion or add regions";
    case "instance":
      return "a single instance serves this path: raise the service's instances or add regions";
    default:
      return "add redundancy";
  }
}
