/**
 * Compiles a validated raw topology into the frozen `Topology`: defaults filled in, availabilities
 * as ratios, latency derived from locations where not given, cells placed on regions.
 */
import { detectionSettings } from "../failover/settings.js";
import type {
  Cell,
  ComponentKind,
  Region,
  Reliability,
  Route,
  Service,
  Slo,
  Topology,
  Zone,
} from "./model.js";
import { placeCells } from "./placement.js";
import { COMPONENT_KINDS, type RawTopology, ROUTE_RE } from "./schema.js";

const DAY = 86_400_000;
/** Defaults for component reliability, chosen to be unremarkable for a public cloud. */
export const DEFAULT_RELIABILITY: Readonly<Record<ComponentKind, { mtbfMs: number; mttrMs: number }>> = {
  instance: { mtbfMs: 30 * DAY, mttrMs: 2 * 60_000 },
  router: { mtbfMs: 60 * DAY, mttrMs: 60_000 },
  database: { mtbfMs: 90 * DAY, mttrMs: 15 * 60_000 },
  zone: { mtbfMs: 365.25 * DAY, mttrMs: 4 * 3_600_000 },
  region: { mtbfMs: 5 * 365.25 * DAY, mttrMs: 12 * 3_600_000 },
  provider: { mtbfMs: 1_000 * 3_600_000, mttrMs: 3_600_000 },
};

const READ_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

export function compile(raw: RawTopology, source: string, fallbackName: string): Topology {
  const regionNames = raw.regions.map((r) => r.name);
  const regions = compileRegions(raw.regions);
  const eligible = raw.cells.regions ?? regionNames;
  const replicas = raw.cells.replicas ?? Math.min(3, eligible.length);
  const pinned = new Map(raw.cells.pin.map((p) => [p.cell, p.regions]));
  const placement = placeCells(
    regions.filter((r) => eligible.includes(r.name)),
    raw.cells.count,
    replicas,
    pinned,
  );
  const { count, buckets } = raw.cells;
  const cells: Cell[] = placement.map((cellRegions, index) => {
    const cellBuckets = Math.floor(buckets / count) + (index < buckets % count ? 1 : 0);
    return {
      id: `cell-${index}`,
      index,
      regions: cellRegions,
      home: cellRegions[0] as string,
      buckets: cellBuckets,
      tenantShare: cellBuckets / buckets,
    };
  });

  const services: Service[] = raw.services.map((s) => {
    const fallbackRoutes = s.fallback?.routes.map(parseRoute) ?? [];
    const slos: Slo[] = s.slos.map((slo) => {
      const routes = slo.routes.map(parseRoute);
      const writes = slo.writes ?? routes.some((r) => !READ_METHODS.has(r.method));
      return {
        scenario: slo.scenario,
        routes,
        availability: slo.availability / 100,
        latencyThresholdMs: slo.latency,
        latencyPercentile: slo.latencyPercentile / 100,
        writes,
        hedge: slo.hedge,
        dependencies: [...new Set([...s.dependencies, ...slo.dependencies])],
        // A fallback is read-only, so it never serves a scenario that writes.
        fallbackCovers:
          fallbackRoutes.length > 0 &&
          !writes &&
          routes.every((r) =>
            fallbackRoutes.some((f) => (f.method === "*" || f.method === r.method) && f.path === r.path),
          ),
      };
    });
    return {
      name: s.name,
      command: s.command,
      healthPath: s.health,
      instancesPerRegion: s.instances,
      capacityRps: s.capacityRps,
      peakRps: s.peakRps,
      tier: s.tier,
      rtoMs: s.rto,
      rpoMs: s.rpo,
      durability: s.durability,
      downtimeCostPerHour: s.downtimeCostPerHour,
      slos,
      fallback: s.fallback
        ? { command: s.fallback.command, routes: fallbackRoutes, instancesPerRegion: s.fallback.instances }
        : undefined,
    };
  });

  const components = Object.fromEntries(
    COMPONENT_KINDS.map((kind) => [kind, reliability(kind, raw.components[kind])]),
  ) as Record<ComponentKind, Reliability>;

  return deepFreeze({
    name: raw.name ?? fallbackName,
    source,
    regions,
    zones: regions.flatMap((r) => r.zones),
    cells: { count, replicas, buckets, syncQuorum: syncQuorumOf(raw.cells, replicas), list: cells },
    routers: {
      perRegion: raw.routers.perRegion,
      tenantHeader: raw.routers.tenantHeader,
      tenantPathPrefix: raw.routers.tenantPathPrefix,
      maxInFlightPerCell: raw.routers.maxInFlightPerCell,
      tryTimeoutMs: raw.routers.tryTimeout,
      deadlineMs: raw.routers.deadline,
      maxAttempts: raw.routers.maxAttempts,
      lastKnownGoodTtlMs: raw.routers.lastKnownGoodTtl,
    },
    services,
    dependencies: raw.dependencies.map((d) => ({
      name: d.name,
      providers: d.providers.map((p) => ({
        name: p.name,
        availability: p.availability / 100,
        costPerMonth: p.costPerMonth,
      })),
    })),
    notifications: raw.notifications.map((n) => ({
      name: n.name,
      kind: n.kind,
      providers: n.providers.map((p) => ({
        name: p.name,
        availability: p.availability / 100,
        url: p.url,
        host: p.host,
        port: p.port,
      })),
    })),
    components,
    costs: {
      instancePerMonth: raw.costs.instancePerMonth,
      routerPerMonth: raw.costs.routerPerMonth,
      databasePerMonth: raw.costs.databasePerMonth,
    },
    failover: {
      detectionMs: raw.failover.detection,
      detection: detectionSettings(raw.failover.detection),
      promotionMs: raw.failover.promotion,
      // The standbys' positions are waited for out of the promotion's budget: past it, the decision
      // is made with those that answered (and asks for consent when they prove nothing).
      positionWaitMs: raw.failover.promotion,
      durability:
        raw.services.length > 0 && raw.services.every((s) => s.durability === "available")
          ? "available"
          : "strict",
      // Losing every out-of-region standby is judged with the patience the topology gives to
      // declaring a primary down (`failover.detection`): a WAN blip shorter than the detection
      // neither fails a primary over nor drops a cell to asynchronous commit.
      asyncAfterMs: raw.failover.detection,
      failback: raw.failover.failback,
      failbackAfterMs: raw.failover.failbackAfter,
      manualFailback: raw.failover.manualFailback,
      startupGraceMs: raw.failover.startupGrace,
    },
    load: { tenants: raw.load.tenants },
    objectives: {
      blastRadius: raw.objectives.blastRadius === undefined ? undefined : raw.objectives.blastRadius / 100,
    },
  });
}

/** ANY 1 out-of-region standby by default; none when a cell has a single replica. */
export function syncQuorumOf(cells: { syncQuorum?: number | undefined }, replicas: number): number {
  return cells.syncQuorum ?? (replicas >= 2 ? 1 : 0);
}

function compileRegions(raw: RawTopology["regions"]): Region[] {
  const given = raw.filter((r) => r.trafficShare !== undefined);
  const givenSum = given.reduce((s, r) => s + (r.trafficShare ?? 0), 0);
  const rest = raw.length - given.length;
  return raw.map((r, index) => {
    const latencyMs: Record<string, number> = {};
    for (const other of raw) {
      if (other.name === r.name) continue;
      const explicit = r.latency?.[other.name] ?? other.latency?.[r.name];
      latencyMs[other.name] =
        explicit ??
        (r.location && other.location ? latencyFromLocations(r.location, other.location) : Number.NaN);
    }
    const zones: Zone[] = r.zones.map((z) => ({ id: `${r.name}/${z}`, name: z, region: r.name }));
    const share =
      r.trafficShare !== undefined ? r.trafficShare / 100 : rest > 0 ? (1 - givenSum / 100) / rest : 0;
    return { name: r.name, index, zones, pair: r.pair, latencyMs, trafficShare: share };
  });
}

/**
 * One-way latency estimated from great-circle distance: light in fibre covers ~200 km/ms and real
 * routes are about twice the great circle, so ~100 km per ms, plus 1 ms of equipment.
 */
export function latencyFromLocations(a: readonly [number, number], b: readonly [number, number]): number {
  const rad = Math.PI / 180;
  const dLat = (b[0] - a[0]) * rad;
  const dLon = (b[1] - a[1]) * rad;
  const h = Math.sin(dLat / 2) ** 2 + Math.cos(a[0] * rad) * Math.cos(b[0] * rad) * Math.sin(dLon / 2) ** 2;
  const km = 2 * 6371 * Math.asin(Math.min(1, Math.sqrt(h)));
  return Math.round(km / 100 + 1);
}

function reliability(
  kind: ComponentKind,
  given:
    | { availability?: number | undefined; mtbf?: number | undefined; mttr?: number | undefined }
    | undefined,
): Reliability {
  const defaults = DEFAULT_RELIABILITY[kind];
  const availabilityRatio = given?.availability === undefined ? undefined : given.availability / 100;
  let mttrMs = given?.mttr ?? defaults.mttrMs;
  let mtbfMs = given?.mtbf ?? defaults.mtbfMs;
  if (availabilityRatio !== undefined) {
    if (given?.mtbf !== undefined) mttrMs = (mtbfMs * (1 - availabilityRatio)) / availabilityRatio;
    else mtbfMs = (mttrMs * availabilityRatio) / (1 - availabilityRatio);
  }
  return { availability: mtbfMs / (mtbfMs + mttrMs), mtbfMs, mttrMs };
}

export function parseRoute(text: string): Route {
  const m = ROUTE_RE.exec(text);
  if (!m) throw new Error(`not a route: ${text}`); // unreachable: the schema checked it
  return { method: m[1] as string, path: m[2] as string };
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === "object" && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}
