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
  readonly fallback: boolean;
}

interface CompiledRoute {
  readonly service: string;
  readonly method: string;
  readonly name: string;
  readonly pattern: RegExp;
  readonly hedge: boolean;
}

export class RouteTable {
  #routes: CompiledRoute[];
  #fallbacks: CompiledRoute[];
  #defaultService: string;

  constructor(topology: Topology) {
    this.#routes = topology.services.flatMap((s) =>
      s.slos.flatMap((slo) => slo.routes.map((r) => compile(s.name, r.method, r.path, slo.hedge))),
    );
    this.#fallbacks = topology.services.flatMap((s) =>
      (s.fallback?.routes ?? []).map((r) => compile(s.name, r.method, r.path, false)),
    );
    this.#defaultService = topology.services[0]?.name ?? "";
  }

  match(method: string, path: string): RouteMatch {
    const route = this.#routes.find((r) => (r.method === "*" || r.method === method) && r.pattern.test(path));
    const service = route?.service ?? this.#defaultService;
    const fallback = this.#fallbacks.some(
      (r) => r.service === service && (r.method === "*" || r.method === method) && r.pattern.test(path),
    );
    return { service, route: route?.name ?? "other", hedge: route?.hedge ?? false, fallback };
  }
}

function compile(service: string, method: string, path: string, hedge: boolean): CompiledRoute {
  const source = path
    .split("/")
    .map((seg) =>
      seg.startsWith(":") ? "[^/]+" : seg === "*" ? ".*" : seg.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"),
    )
    .join("/");
  return { service, method, name: `${method} ${path}`, pattern: new RegExp(`^${source}$`), hedge };
}
