/**
 * What `ringfence load` and `ringfence audit` need from a local world: its layout (router and
 * database addresses), the controller's bucket table and cell primaries (reader token), and the
 * topology's tenant header and the service that owns `/users/:id`.
 */
import { RingfenceError } from "../lib/errors.js";
import { loadTopology } from "../topology/load.js";
import type { Topology } from "../topology/model.js";
import { type CellState, decodeBucketTable, type RoutingTable } from "../world/contracts.js";
import { buildLayout, type Layout } from "../world/layout.js";
import { StateDir } from "../world/state.js";
import type { Target } from "./http.js";

export interface LoadWorld {
  readonly topology: Topology;
  readonly layout: Layout;
  /** GET on the controller with the reader token; throws RINGFENCE_WORLD_NOT_FOUND when it does not answer. */
  controllerGet<T>(path: string): Promise<T>;
}

/** Opens the world of a state directory; throws RINGFENCE_WORLD_NOT_FOUND when there is none. */
export function openWorld(stateDir: string): LoadWorld {
  const state = new StateDir(stateDir);
  const config = state.readConfig();
  const topology = loadTopology(config.topologyFile);
  const layout = buildLayout(topology, config.addressBase);
  const token = state.tokens().reader;
  const base = `http://${layout.controller.host}:${layout.controller.port}`;
  return {
    topology,
    layout,
    async controllerGet<T>(path: string): Promise<T> {
      let res: Response;
      try {
        res = await fetch(`${base}${path}`, {
          headers: { authorization: `Bearer ${token}` },
          signal: AbortSignal.timeout(5_000),
        });
      } catch (err) {
        throw new RingfenceError(
          "RINGFENCE_WORLD_NOT_FOUND",
          `the controller at ${base} does not answer (${(err as Error).message}); is the world up? (\`ringfence up\`, or pass --state-dir)`,
        );
      }
      const text = await res.text();
      if (!res.ok) {
        throw new RingfenceError(
          "RINGFENCE_WORLD_NOT_FOUND",
          `the controller at ${base} answered GET ${path} with ${res.status}: ${text.slice(0, 300)}`,
        );
      }
      return JSON.parse(text) as T;
    },
  };
}

/** The routers of the given regions (every region when none are given), in topology order. */
export function routerTargets(world: Pick<LoadWorld, "layout">, regions: readonly string[] = []): Target[] {
  const all = world.layout.regions.map((r) => ({ region: r.name, host: r.router.host, port: r.router.port }));
  const unknown = regions.filter((name) => !all.some((r) => r.region === name));
  if (unknown.length > 0) {
    throw new RingfenceError(
      "RINGFENCE_USAGE",
      `--region: unknown region ${unknown.map((r) => `"${r}"`).join(", ")}; the world has ${all.map((r) => r.region).join(", ")}`,
    );
  }
  return regions.length === 0 ? all : all.filter((r) => regions.includes(r.region));
}

/** The controller's bucket table (bucket → cell index). */
export async function fetchBucketTable(world: LoadWorld): Promise<Uint32Array> {
  const routing = await world.controllerGet<RoutingTable>("/v1/routing");
  return decodeBucketTable(routing.bucketTable);
}

/** Each cell's current primary region, from the controller's `GET /v1/state`. */
export async function fetchPrimaries(world: LoadWorld): Promise<Map<string, string>> {
  const state = await world.controllerGet<{ cells: readonly CellState[] }>("/v1/state");
  return new Map(state.cells.map((c) => [c.cell, c.primary]));
}

/** The service whose SLO routes include `PUT /users/:id` (the demo directory), else the first service. */
export function usersService(topology: Topology): string {
  const owner = topology.services.find((s) =>
    s.slos.some((slo) => slo.routes.some((r) => r.path === "/users/:id" && r.method === "PUT")),
  );
  return owner?.name ?? topology.services[0]?.name ?? "directory";
}

/** How requests carry the tenant in this world (topology `routers.tenantHeader` / `tenantPathPrefix`). */
export function tenantAddressing(topology: Topology): { tenantHeader: string; tenantPathPrefix?: string } {
  const header = topology.routers.tenantHeader.toLowerCase();
  const prefix = topology.routers.tenantPathPrefix;
  return prefix === undefined ? { tenantHeader: header } : { tenantHeader: header, tenantPathPrefix: prefix };
}
