/**
 * The `try:` lines `ringfence up` prints: requests a person can paste to see the world answer. They
 * come from the topology, so they fit the service it runs: each scenario's first SLO route (path
 * parameters filled with an example value), with the tenant where the routers read it. The bundled
 * demo directory gets its own lines instead: a user written in one region and read in another.
 */
import type { Route, Service, Topology } from "../topology/model.js";

/** The tenant the examples use. */
export const EXAMPLE_TENANT = "acme";
/** At most this many generic example requests are printed; the rest are counted. */
export const MAX_EXAMPLES = 4;

/** True for the bundled demo directory service (`ringfence demo directory`). */
export function isBundledDemo(service: Service): boolean {
  const [bin, group, name] = service.command;
  return bin === "ringfence" && group === "demo" && name === "directory";
}

/** A route's path with every `:param` replaced by an example value (`1` for ids, else `example`). */
export function examplePath(path: string): string {
  return path.replace(/:([A-Za-z_][A-Za-z0-9_]*)/g, (_, name: string) =>
    name === "id" || name.endsWith("Id") || name.endsWith("_id") ? "1" : "example",
  );
}

/**
 * Example `curl` command lines for the services of `topology` through the routers at `routers`
 * (URLs, first region first): the demo's own for the bundled demo, otherwise one per scenario.
 */
export function exampleRequests(topology: Topology, routers: readonly string[]): string[] {
  const first = routers[0];
  if (first === undefined) return [];
  const other = routers[1] ?? first;
  const { tenantHeader, tenantPathPrefix } = topology.routers;
  const url = (router: string, path: string) =>
    tenantPathPrefix === undefined
      ? `${router}${path}`
      : `${router}${tenantPathPrefix}${EXAMPLE_TENANT}${path}`;
  const tenant = tenantPathPrefix === undefined ? ` -H '${tenantHeader}: ${EXAMPLE_TENANT}'` : "";
  const lines: string[] = [];
  const generic: Route[] = [];
  for (const service of topology.services) {
    if (isBundledDemo(service)) {
      lines.push(
        `curl -X PUT${tenant} -H 'content-type: application/json' -d '{"name":"Ada","email":"ada@example.com"}' ${url(first, "/users/ada")}`,
        `curl${tenant} ${url(other, "/users/ada")}`,
      );
      continue;
    }
    for (const slo of service.slos) {
      const route = slo.routes[0];
      if (route && !generic.some((r) => r.method === route.method && r.path === route.path))
        generic.push(route);
    }
  }
  for (const route of generic.slice(0, MAX_EXAMPLES)) {
    lines.push(curl(route, tenant, url(first, examplePath(route.path))));
  }
  if (generic.length > MAX_EXAMPLES) {
    lines.push(`(${generic.length - MAX_EXAMPLES} more scenarios in the topology's services[].slos)`);
  }
  return lines;
}

function curl(route: Route, tenant: string, target: string): string {
  switch (route.method) {
    case "GET":
    case "*":
      return `curl${tenant} ${target}`;
    case "HEAD":
      return `curl -I${tenant} ${target}`;
    case "POST":
    case "PUT":
    case "PATCH":
      return `curl -X ${route.method}${tenant} -H 'content-type: application/json' -d '{}' ${target}`;
    default:
      return `curl -X ${route.method}${tenant} ${target}`;
  }
}
