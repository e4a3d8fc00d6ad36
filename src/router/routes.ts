/**
 * Route matching for the router: which service and which SLO route a request belongs to, whether
 * the route opted into hedging, and whether the service's fallback may serve it.
 */
import type { Topology } from "../topology/model.js";

export interface RouteMatch {
  readonly service: string;
  /** The matched route as written in the topology (`GET /users/:id`), or `other`. */
  readonly route: string;
  readonly hedge: boolean;
}

interface CompiledRoute {
  readonly service: string;
  readonly method: string;
  readonly pattern: RegExp;
  /** What a request on this route matches: one frozen object, so matching allocates nothing. */
  readonly match: RouteMatch;
}

export class RouteTable {
  #routes: CompiledRoute[];
  #fallbacks: CompiledRoute[];
  #other: RouteMatch;

  constructor(topology: Topology) {
    this.#routes = topology.services.flatMap((s) =>
      s.slos.flatMap((slo) => slo.routes.map((r) => compile(s.name, r.method, r.path, slo.hedge))),
    );
    this.#fallbacks = topology.services.flatMap((s) =>
      (s.fallback?.routes ?? []).map((r) => compile(s.name, r.method, r.path, false)),
    );
    this.#other = Object.freeze({ service: topology.services[0]?.name ?? "", route: "other", hedge: false });
  }

  /** The route of a request path (without its query). */
  match(method: string, path: string): RouteMatch {
    for (const r of this.#routes) {
      if ((r.method === "*" || r.method === method) && r.pattern.test(path)) return r.match;
    }
    return this.#other;
  }

  /** Whether the service's fallback may serve this request (asked only when no instance is healthy). */
  fallback(service: string, method: string, path: string): boolean {
    return this.#fallbacks.some(
      (r) => r.service === service && (r.method === "*" || r.method === method) && r.pattern.test(path),
    );
  }
}

function compile(service: string, method: string, path: string, hedge: boolean): CompiledRoute {
  const source = path
    .split("/")
    .map((seg) =>
      seg.startsWith(":") ? "[^/]+" : seg === "*" ? ".*" : seg.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"),
    )
    .join("/");
  return {
    service,
    method,
    pattern: new RegExp(`^${source}$`),
    match: Object.freeze({ service, route: `${method} ${path}`, hedge }),
  };
}
