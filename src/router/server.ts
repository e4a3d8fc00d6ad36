/**
 * The router: the front door of a region. Each request goes through small composed pieces:
 *
 *   tenant (header or path prefix) → bucket → cell (routing table) → route (service, hedging,
 *   fallback) → load shedding (in-flight bound per cell) → upstream choice (own region first, then
 *   nearest; least outstanding; skipping drained, unhealthy and ejected instances) → attempt, with
 *   retries for idempotent requests to another instance (another zone, then another region) within
 *   a retry budget, jittered backoff honouring Retry-After, a per-try timeout and an overall
 *   deadline → optional hedge to another region after the route's p95 → the service's fallback
 *   when the cell has no healthy instance → telemetry.
 *
 * This file admits a request (tenant, table, cell, route, shedding, body) and hands it on; the
 * pieces beside it do the rest: upstreams.ts chooses where to send, attempts.ts makes the tries
 * (the first on callbacks, then retries and hedges), policy/ holds the budget, ejection, shedding
 * and backoff rules, respond.ts the router's own answers.
 *
 * The hot path is ringfence's own HTTP/1.1 on plain sockets at both ends: a strict request parser
 * and server for clients (downstream/), keep-alive pools for upstreams (upstream/), with no
 * framework and no intermediate streams. A GET meets no promise until its answer is written.
 */
import type { Topology } from "../topology/model.js";
import { tenantBucket } from "../topology/placement.js";
import type { Endpoint, Layout } from "../world/layout.js";
import { type AttemptArgs, Attempts, type FirstTry, IDEMPOTENT, type RecordFn } from "./attempts.js";
import { HttpServer, type IncomingRequest, type OutgoingResponse } from "./downstream/http-server.js";
import { type RequestHeaders, readRequestHeaders, upstreamLines } from "./headers.js";
import {
  type HeaderValue,
  LatencyTracker,
  LoadShedder,
  OutlierDetector,
  type OutlierOptions,
  parseTenant,
  RetryBudget,
  shouldHedge,
  type TenantOptions,
} from "./policy/index.js";
import { json, refuse } from "./respond.js";
import { type RouteMatch, RouteTable } from "./routes.js";
import type { LiveTable, TableClient } from "./table.js";
import type { Telemetry } from "./telemetry.js";
import type { UpstreamRequest } from "./upstream/pool.js";
import { Upstreams } from "./upstreams.js";

export interface RouterServerOptions {
  readonly region: string;
  readonly topology: Topology;
  readonly layout: Layout;
  readonly table: TableClient;
  readonly telemetry: Telemetry;
  /** Largest request body accepted (413 beyond). Default 1 MiB. */
  readonly maxBodyBytes?: number;
  /** Largest request head accepted (431 beyond). Default 16 KiB. */
  readonly maxHeaderBytes?: number;
  /** Time a client has to send its request head (408 after). Default 10 s. */
  readonly headersTimeoutMs?: number;
  /** Overrides of the outlier detector's defaults (tests shorten ejection times). */
  readonly outlier?: Partial<OutlierOptions>;
  readonly now?: () => number;
}

const EMPTY = Buffer.alloc(0);

/** One admitted request on its way: what routing it needs once its body (if any) is read. */
interface Admitted {
  readonly res: OutgoingResponse;
  readonly method: string;
  readonly path: string;
  readonly route: string;
  readonly head: RequestHeaders;
  readonly cell: string;
  readonly match: RouteMatch;
  readonly live: LiveTable;
  readonly remoteAddress: string;
  readonly record: RecordFn;
  /** Gives back the request's place in the cell's in-flight bound and the retry budget (once). */
  readonly release: () => void;
}

export class RouterServer {
  readonly #options: RouterServerOptions;
  #server: HttpServer | undefined;
  readonly #routes: RouteTable;
  readonly #upstreams: Upstreams;
  readonly #attempts: Attempts;
  readonly #budget = new RetryBudget();
  readonly #outliers: OutlierDetector;
  readonly #shedder: LoadShedder;
  readonly #latency = new Map<string, LatencyTracker>();
  readonly #tenantHeader: string;
  readonly #tenantOptions: TenantOptions;
  /** Reused for every request: parseTenant reads it and keeps nothing. */
  readonly #tenantInput: { headers: Record<string, HeaderValue>; path: string } = { headers: {}, path: "/" };
  readonly #cellNames: string[] = [];
  /** Requests answered and those answered with a status ≥ 500, since start. */
  readonly counts = { requests: 0, errors: 0 };

  constructor(options: RouterServerOptions) {
    this.#options = options;
    const { topology, layout, region } = options;
    this.#routes = new RouteTable(topology);
    this.#tenantHeader = topology.routers.tenantHeader.toLowerCase();
    this.#tenantOptions = {
      header: this.#tenantHeader,
      ...(topology.routers.tenantPathPrefix ? { pathPrefix: topology.routers.tenantPathPrefix } : {}),
    };
    const now = options.now ?? Date.now;
    this.#outliers = new OutlierDetector({ now, ...options.outlier });
    this.#upstreams = new Upstreams(topology, layout, region, this.#outliers);
    this.#attempts = new Attempts({
      topology,
      upstreams: this.#upstreams,
      budget: this.#budget,
      outliers: this.#outliers,
      tracker: (route) => this.#tracker(route),
    });
    this.#shedder = new LoadShedder({ limit: topology.routers.maxInFlightPerCell });
    options.telemetry.setInFlightSource(() => this.#shedder.entries());
    for (const slot of layout.instances) {
      this.#outliers.register(slot.id, `${slot.service}/${slot.cell}/${slot.region}/${slot.kind}`);
    }
  }

  async listen(endpoint: Endpoint): Promise<Endpoint> {
    const server = new HttpServer(
      {
        maxHeadBytes: this.#options.maxHeaderBytes ?? 16_384,
        maxBodyBytes: this.#options.maxBodyBytes ?? 1 << 20,
        headersTimeoutMs: this.#options.headersTimeoutMs ?? 10_000,
        keepAliveTimeoutMs: 65_000,
      },
      (req, res) => {
        try {
          this.#handle(req, res);
        } catch (err) {
          this.#internalError(res, err as Error);
        }
      },
    );
    const bound = await server.listen(endpoint.port, endpoint.host);
    this.#server = server;
    return bound;
  }

  /** The router's own state, for its health endpoint and heartbeats. */
  health(): Record<string, unknown> {
    const live = this.#options.table.current();
    const stale = this.#options.table.stale;
    return {
      status: live ? (stale ? "degraded" : "ok") : "no-table",
      region: this.#options.region,
      table: live ? { version: live.table.version, ageMs: this.#options.table.ageMs(), stale } : null,
      reason: !live
        ? "no routing table (never received, or older than the last-known-good TTL)"
        : stale
          ? "serving from the last-known-good routing table: the controller is unreachable"
          : undefined,
      ejected: this.#outliers.ejected(),
      retryBudget: this.#budget.stats(),
    };
  }

  /** The outlier detector's view of one upstream (for diagnostics). */
  inspect(id: string): unknown {
    return { outlier: this.#outliers.inspect(id), outstanding: this.#upstreams.get(id)?.outstanding ?? null };
  }

  /** `cell-<n>`, built once per cell. */
  #cellName(index: number): string {
    let name = this.#cellNames[index];
    if (name === undefined) {
      name = `cell-${index}`;
      this.#cellNames[index] = name;
    }
    return name;
  }

  /**
   * A request, from its head: refused at once when its tenant is bad, there is no routing table or
   * its cell is at its in-flight bound; otherwise admitted, and routed once its body (if any) is read.
   * No promise on the way of a GET: the fast path stays on callbacks until the answer is written.
   */
  #handle(req: IncomingRequest, res: OutgoingResponse): void {
    const started = performance.now();
    const url = req.target;
    if (url.startsWith("/_ringfence/")) {
      this.#admin(url, res).catch((err: Error) => this.#internalError(res, err));
      return;
    }
    const head = readRequestHeaders(req.headers, this.#tenantHeader);
    const input = this.#tenantInput;
    input.headers[this.#tenantHeader] = head.tenant;
    input.path = url;
    const tenantResult = parseTenant(input, this.#tenantOptions);
    if (!tenantResult.ok) {
      refuse(res, 400, tenantResult.code, tenantResult.message);
      return;
    }
    const live = this.#options.table.current();
    if (!live) {
      refuse(
        res,
        503,
        "RINGFENCE_NO_ROUTING_TABLE",
        "the router has no routing table yet (or it outlived its last-known-good TTL)",
        1,
      );
      return;
    }
    const { tenant } = tenantResult;
    const path = tenantResult.path;
    const cell = this.#cellName(live.buckets[tenantBucket(tenant, live.buckets.length)] as number);
    const method = req.method;
    const query = path.indexOf("?");
    const route = query < 0 ? path : path.slice(0, query);
    const match = this.#routes.match(method, route);
    const record: RecordFn = (status, regionServed, retries) => {
      this.counts.requests++;
      if (status >= 500) this.counts.errors++;
      this.#options.telemetry.record({
        tenant,
        cell,
        regionServed,
        service: match.service,
        version: "v1",
        route: match.route,
        status,
        latencyMs: performance.now() - started,
        retries,
      });
    };
    if (!this.#shedder.tryAcquire(cell)) {
      record(503, this.#options.region, 0);
      refuse(
        res,
        503,
        "RINGFENCE_SHED",
        `${cell} has too many requests in flight at this router; retry shortly`,
        1,
      );
      return;
    }
    this.#budget.requestStarted();
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      this.#budget.requestFinished();
      this.#shedder.release(cell);
    };
    const admitted: Admitted = {
      res,
      method,
      path,
      route,
      head,
      cell,
      match,
      live,
      remoteAddress: req.remoteAddress,
      record,
      release,
    };
    try {
      if (method === "GET" || method === "HEAD") this.#route(admitted, undefined);
      else if (!req.hasBody) this.#route(admitted, EMPTY);
      else
        req.body().then(
          (read) => this.#withBody(admitted, read),
          (err: Error) => {
            release();
            this.#internalError(res, err);
          },
        );
    } catch (err) {
      release();
      throw err;
    }
  }

  /** Routes a request once its body is read: not when the client went away, 413 when it is too large. */
  #withBody(r: Admitted, read: Buffer | "too-large" | "gone"): void {
    if (read === "gone") {
      r.release();
      return;
    }
    if (read === "too-large") {
      r.release();
      r.record(413, this.#options.region, 0);
      refuse(
        r.res,
        413,
        "RINGFENCE_BODY_TOO_LARGE",
        `request bodies are limited to ${this.#options.maxBodyBytes ?? 1 << 20} bytes`,
      );
      return;
    }
    try {
      this.#route(r, read);
    } catch (err) {
      r.release();
      this.#internalError(r.res, err as Error);
    }
  }

  /** Routes an admitted request: the candidates, then the first try on callbacks, the rest if it failed. */
  #route(r: Admitted, body: Buffer | undefined): void {
    const { method, match, cell, res, record, release } = r;
    const request: UpstreamRequest = {
      method,
      path: r.path,
      headerLines: upstreamLines(r.head, cell, this.#options.region, r.remoteAddress),
      body,
    };
    let groups = this.#upstreams.eligible(r.live, match.service, cell, "service");
    let fallback = false;
    if (groups.length === 0 && this.#routes.fallback(match.service, method, r.route)) {
      groups = this.#upstreams.eligible(r.live, match.service, cell, "fallback");
      fallback = true;
    }
    if (groups.length === 0) {
      release();
      record(503, this.#options.region, 0);
      refuse(
        res,
        503,
        "RINGFENCE_NO_HEALTHY_INSTANCE",
        `no healthy instance of ${match.service} in ${cell} in any region`,
        1,
      );
      return;
    }
    const idempotent = IDEMPOTENT.has(method) || r.head.idempotencyKey;
    const args: AttemptArgs = { groups, request, idempotent, match, cell, fallback };
    const deadline = performance.now() + this.#options.topology.routers.deadlineMs;
    if (shouldHedge(method, match)) {
      this.#retry(args, deadline, undefined, r);
      return;
    }
    this.#attempts.first(args, res, deadline, record, (first) => {
      if (first === "answered") release();
      else this.#retry(args, deadline, first, r);
    });
  }

  /** After the fast path: the remaining tries (or a hedged first one), then the answer or the refusal. */
  #retry(args: AttemptArgs, deadline: number, first: FirstTry | undefined, r: Admitted): void {
    const { res, record } = r;
    this.#attempts
      .run(args, deadline, first)
      .then(async (outcome) => {
        if (outcome.kind === "response") {
          await new Promise<void>((resolve) => this.#attempts.answer(res, outcome, record, resolve));
          return;
        }
        record(outcome.status, this.#options.region, outcome.retries);
        refuse(res, outcome.status, outcome.code, outcome.message, outcome.status === 503 ? 1 : undefined);
      })
      .catch((err: Error) => this.#internalError(res, err))
      .finally(r.release);
  }

  #tracker(route: string): LatencyTracker {
    let t = this.#latency.get(route);
    if (!t) {
      t = new LatencyTracker();
      this.#latency.set(route, t);
    }
    return t;
  }

  async #admin(url: string, res: OutgoingResponse): Promise<void> {
    if (url === "/_ringfence/health") {
      const health = this.health();
      return json(res, health.status === "no-table" ? 503 : 200, health);
    }
    if (url === "/_ringfence/metrics" || url === "/metrics") {
      this.#options.telemetry.tableStale.set(this.#options.table.stale ? 1 : 0);
      this.#options.telemetry.ejected.set(this.#outliers.ejected().length);
      const text = await this.#options.telemetry.metrics();
      res.respond(200, ["content-type", this.#options.telemetry.registry.contentType], text);
      return;
    }
    return refuse(res, 404, "RINGFENCE_NOT_FOUND", `no such router endpoint: ${url}`);
  }

  /** A bug in the router: 500 to the client (or a reset once the answer has begun). */
  #internalError(res: OutgoingResponse, err: Error): void {
    refuse(res, 500, "RINGFENCE_INTERNAL", `router error: ${err.message}`);
  }

  async close(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    if (server) await server.close();
    this.#upstreams.close();
  }
}
