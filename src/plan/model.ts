/**
 * Builds the reliability model of a topology: a catalogue of every physical component (with its
 * availability, MTBF and MTTR) and, for every SLO scenario and cell, the block diagram of what a
 * request of that scenario needs.
 *
 * The request path of a scenario for a tenant of cell c:
 *   routers (any region: region × zone × router)
 *   → service: any of c's regions with the region, an instance in a live zone, and c's local replica
 *   → writes only: the write quorum (primary + syncQuorum out-of-region standbys; cells under the
 *     `available` policy, `topology.failover.durability` as the controller applies it, need the
 *     primary alone) and the failover window after a primary loss
 *   → each external dependency the scenario uses (any of its providers)
 * with the service's fallback in parallel to everything after the routers when it covers the routes.
 */
import type { Cell, ComponentKind, Service, Slo, Topology } from "../topology/model.js";
import { atLeast, type Block, component, parallel, series } from "./blocks.js";

export type CatalogKind = ComponentKind | "failover";

export interface CatalogEntry {
  readonly id: string;
  readonly kind: CatalogKind;
  readonly label: string;
  readonly availability: number;
  readonly mtbfMs: number;
  readonly mttrMs: number;
}

export interface CellScenario {
  readonly cell: Cell;
  readonly block: Block;
}

export interface ScenarioModel {
  readonly service: Service;
  readonly slo: Slo;
  readonly cells: readonly CellScenario[];
}

export interface PlanModel {
  readonly topology: Topology;
  /** The routers block shared by every scenario (clients reach any region's routers). */
  readonly routers: Block;
  readonly catalog: ReadonlyMap<string, CatalogEntry>;
  readonly scenarios: readonly ScenarioModel[];
}

export const ids = {
  region: (r: string) => `region:${r}`,
  zone: (zoneId: string) => `zone:${zoneId}`,
  router: (r: string, i: number) => `router:${r}/${i}`,
  instance: (s: string, cell: string, r: string, i: number) => `instance:${s}/${cell}/${r}/${i}`,
  fallback: (s: string, cell: string, r: string, i: number) => `fallback:${s}/${cell}/${r}/${i}`,
  database: (cell: string, r: string) => `database:${cell}/${r}`,
  provider: (d: string, p: string) => `provider:${d}/${p}`,
  failover: (cell: string) => `failover:${cell}`,
};

export function buildModel(topology: Topology): PlanModel {
  const catalog = new Map<string, CatalogEntry>();
  const add = (id: string, kind: CatalogKind, label: string, rel?: { mtbfMs: number; mttrMs: number }) => {
    if (catalog.has(id)) return;
    const r = rel ?? topology.components[kind as ComponentKind];
    catalog.set(id, {
      id,
      kind,
      label,
      availability: r.mtbfMs / (r.mtbfMs + r.mttrMs),
      mtbfMs: r.mtbfMs,
      mttrMs: r.mttrMs,
    });
  };
  const regionByName = new Map(topology.regions.map((r) => [r.name, r]));
  const zoneOf = (region: string, index: number) => {
    const zones = regionByName.get(region)?.zones ?? [];
    return zones[index % zones.length] as (typeof zones)[number];
  };

  for (const r of topology.regions) {
    add(ids.region(r.name), "region", `region ${r.name}`);
    for (const z of r.zones) add(ids.zone(z.id), "zone", `zone ${z.id}`);
  }

  // One routers block for the whole topology: clients reach any region's routers.
  const routers = parallel(
    "routers (any region)",
    topology.regions.map((r) =>
      series(`routers in ${r.name}`, [
        component(ids.region(r.name)),
        parallel(
          `${topology.routers.perRegion} router(s) in ${r.name}`,
          Array.from({ length: topology.routers.perRegion }, (_, i) => {
            const zone = zoneOf(r.name, i);
            add(ids.router(r.name, i), "router", `router ${i} in ${zone.id}`);
            return series(`router ${r.name}/${i}`, [
              component(ids.zone(zone.id)),
              component(ids.router(r.name, i)),
            ]);
          }),
        ),
      ]),
    ),
  );

  const replicaBlock = (cell: Cell, region: string) => {
    const zone = zoneOf(region, cell.index);
    add(ids.database(cell.id, region), "database", `${cell.id} database in ${zone.id}`);
    return series(`${cell.id} replica in ${region}`, [
      component(ids.zone(zone.id)),
      component(ids.database(cell.id, region)),
    ]);
  };

  const instancesIn = (
    cell: Cell,
    region: string,
    count: number,
    idOf: typeof ids.instance,
    what: string,
    service: string,
  ) => {
    const zones = regionByName.get(region)?.zones ?? [];
    const byZone = new Map<string, Block[]>();
    for (let i = 0; i < count; i++) {
      // As the local world places them (world/layout.ts): instance i in zone cell + i, fallbacks one further.
      const zone = zoneOf(region, i + cell.index + (what === "fallback" ? 1 : 0));
      const id = idOf(service, cell.id, region, i);
      add(id, "instance", `${service} ${what} ${i} of ${cell.id} in ${zone.id}`);
      byZone.set(zone.id, [...(byZone.get(zone.id) ?? []), component(id)]);
    }
    return parallel(
      `${count} ${what}(s) of ${cell.id} in ${region}`,
      zones
        .filter((z) => byZone.has(z.id))
        .map((z) =>
          series(`${what}s in ${z.id}`, [
            component(ids.zone(z.id)),
            parallel(`${what}s in ${z.id}`, byZone.get(z.id) ?? []),
          ]),
        ),
    );
  };

  const failoverFor = (cell: Cell) => {
    // Expected write outage from automatic failovers: anything that takes the primary down
    // (its database, zone or region) starts a failover lasting detection + promotion.
    const c = topology.components;
    const rate = 1 / c.database.mtbfMs + 1 / c.zone.mtbfMs + 1 / c.region.mtbfMs;
    add(ids.failover(cell.id), "failover", `${cell.id} failover window`, {
      mtbfMs: 1 / rate,
      mttrMs: topology.failover.detectionMs + topology.failover.promotionMs,
    });
    return component(ids.failover(cell.id));
  };

  const dependencyBlocks = (slo: Slo) =>
    slo.dependencies.map((name) => {
      const dep = topology.dependencies.find((d) => d.name === name);
      const providers = dep?.providers ?? [];
      return parallel(
        `dependency ${name}`,
        providers.map((p) => {
          const id = ids.provider(name, p.name);
          const mttrMs = topology.components.provider.mttrMs;
          add(id, "provider", `${name} provider ${p.name}`, {
            mttrMs,
            mtbfMs: (mttrMs * p.availability) / (1 - p.availability),
          });
          return component(id);
        }),
      );
    });

  const scenarios: ScenarioModel[] = [];
  for (const service of topology.services) {
    for (const slo of service.slos) {
      const cells = topology.cells.list.map((cell): CellScenario => {
        const serving = parallel(
          `${service.name} in any of ${cell.id}'s regions`,
          cell.regions.map((region) =>
            series(`${service.name} in ${region}`, [
              component(ids.region(region)),
              instancesIn(cell, region, service.instancesPerRegion, ids.instance, "instance", service.name),
              replicaBlock(cell, region),
            ]),
          ),
        );
        const main: Block[] = [serving];
        if (slo.writes) {
          const k =
            topology.failover.durability === "strict"
              ? Math.min(topology.cells.syncQuorum + 1, cell.regions.length)
              : 1;
          main.push(
            atLeast(
              `write quorum: ${k} of ${cell.regions.length} replicas`,
              k,
              cell.regions.map((region) =>
                series(`${cell.id} database in ${region}`, [
                  component(ids.region(region)),
                  replicaBlock(cell, region),
                ]),
              ),
            ),
          );
          main.push(failoverFor(cell));
        }
        main.push(...dependencyBlocks(slo));
        let path: Block = series(`${service.name} path`, main);
        if (slo.fallbackCovers && service.fallback) {
          const fb = service.fallback;
          const fallback = parallel(
            `${service.name} fallback in any of ${cell.id}'s regions`,
            cell.regions.map((region) =>
              series(`fallback in ${region}`, [
                component(ids.region(region)),
                instancesIn(cell, region, fb.instancesPerRegion, ids.fallback, "fallback", service.name),
                replicaBlock(cell, region),
              ]),
            ),
          );
          path = parallel(`${service.name} or its fallback`, [path, fallback]);
        }
        const block = series(`${service.name}/${slo.scenario} for ${cell.id}`, [
          routers,
          ...(path.kind === "series" ? path.children : [path]),
        ]);
        return { cell, block };
      });
      scenarios.push({ service, slo, cells });
    }
  }
  return { topology, routers, catalog, scenarios };
}

/** The availability lookup of a model's catalogue, with optional overrides. */
export function availabilityOf(
  model: PlanModel,
  overrides?: ReadonlyMap<string, number>,
): (id: string) => number {
  return (id) => {
    const o = overrides?.get(id);
    if (o !== undefined) return o;
    const entry = model.catalog.get(id);
    if (!entry) throw new Error(`unknown component ${id}`);
    return entry.availability;
  };
}
