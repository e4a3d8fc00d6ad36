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
 * The hot path is ringfence's own HTTP/1.1 on plain sockets at both ends: a strict request parser
 * and server for clients (downstream/), keep-alive pools for upstreams (upstream/), with no
 * framework and no intermediate streams.
 */
import type { Topology } from "../topology/model.js";
import { tenantBucket } from "../topology/placement.js";
import { type Endpoint, type InstanceSlot, type Layout, reach } from "../world/layout.js";
import { HttpServer, type IncomingRequest, type OutgoingResponse } from "./downstream/http-server.js";
import { headerValue, readRequestHeaders, responseHeaders, upstreamLines } from "./headers.js";
import {
  type HeaderValue,
  LatencyTracker,
  LoadShedder,
  OutlierDetector,
  type OutlierOptions,
  parseRetryAfter,
  parseTenant,
  RetryBudget,
  retryDelayMs,
  type TenantOptions,
} from "./policy/index.js";
import { RouteTable } from "./routes.js";
import type { LiveTable, TableClient } from "./table.js";
import type { Telemetry } from "./telemetry.js";
import { type Exchange, type UpstreamError, UpstreamPool, type UpstreamRequest } from "./upstream/pool.js";

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

const IDEMPOTENT = new Set(["GET", "HEAD", "PUT", "DELETE", "OPTIONS"]);
const RETRYABLE_STATUS = new Set([502, 503, 504]);
const EMPTY = Buffer.alloc(0);

interface Upstream {
  readonly slot: InstanceSlot;
  readonly target: Endpoint;
  readonly pool: UpstreamPool;
  outstanding: number;
}

interface AttemptArgs {
  readonly groups: Upstream[][];
  readonly request: UpstreamRequest;
  readonly idempotent: boolean;
  readonly match: { readonly route: string; readonly hedge: boolean; readonly service: string };
  readonly cell: string;
  readonly fallback: boolean;
}

/** Reports one answered request to telemetry. */
type RecordFn = (status: number, regionServed: string, retries: number) => void;

/** A first try that did not answer well, for {@link RouterServer} `#attempts` to go on from. */
interface FirstTry {
  readonly upstream: Upstream;
  readonly result: AttemptResult;
  readonly started: number;
}

/** No instance tried yet. */
const NOT_TRIED: ReadonlySet<string> = new Set();

type AttemptResult =
  | {
      kind: "response";
      upstream: Upstream;
      status: number;
      /** Flat `[name, value, …]`, as received. */
      headers: string[];
      exchange: Exchange;
    }
  | { kind: "error"; upstream: Upstream; error: Error & { code?: string }; notSent: boolean };

export class RouterServer {
  #options: RouterServerOptions;
  #server: HttpServer | undefined;
  #routes: RouteTable;
  #upstreams = new Map<string, Upstream>();
  #order: string[];
  #budget = new RetryBudget();
  #outliers: OutlierDetector;
  #shedder: LoadShedder;
  #latency = new Map<string, LatencyTracker>();
  #rotation = 0;
  #tenantHeader: string;
  #tenantOptions: TenantOptions;
  /** Reused for every request: parseTenant reads it and keeps nothing. */
  #tenantInput: { headers: Record<string, HeaderValue>; path: string } = { headers: {}, path: "/" };
  #cellNames: string[] = [];
  /** The instance slots of each (service, cell, kind), grouped by region, own region first. */
  #slots = new Map<string, InstanceSlot[][]>();
  /** Requests answered and those answered with a status ≥ 500, since start. */
  readonly counts = { requests: 0, errors: 0 };

  constructor(options: RouterServerOptions) {
    this.#options = options;
    const { topology, layout, region } = options;
    const own = topology.regions.find((r) => r.name === region);
    if (!own) throw new Error(`unknown region ${region}`);
    this.#order = [
      own.name,
      ...topology.regions
        .filter((r) => r.name !== own.name)
        .sort(
          (a, b) =>
            (own.latencyMs[a.name] ?? 0) - (own.latencyMs[b.name] ?? 0) || a.name.localeCompare(b.name),
        )
        .map((r) => r.name),
    ];
    this.#routes = new RouteTable(topology);
    this.#tenantHeader = topology.routers.tenantHeader.toLowerCase();
    this.#tenantOptions = {
      header: this.#tenantHeader,
      ...(topology.routers.tenantPathPrefix ? { pathPrefix: topology.routers.tenantPathPrefix } : {}),
    };
    for (const slot of layout.instances) {
      const key = `${slot.service}|${slot.cell}|${slot.kind}`;
      let groups = this.#slots.get(key);
      if (!groups) {
        groups = this.#order.map(() => []);
        this.#slots.set(key, groups);
      }
      groups[this.#order.indexOf(slot.region)]?.push(slot);
    }
    const now = options.now ?? Date.now;
    this.#outliers = new OutlierDetector({ now, ...options.outlier });
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
        this.#handle(req, res).catch((err: Error) =>
          this.#fail(res, 500, "RINGFENCE_INTERNAL", `router error: ${err.message}`),
        );
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

  #upstream(slot: InstanceSlot): Upstream {
    let u = this.#upstreams.get(slot.id);
    if (!u) {
      const target = reach(this.#options.layout, this.#options.region, slot.region, slot);
      u = {
        slot,
        target,
        pool: new UpstreamPool({ host: target.host, port: target.port, maxConnections: 128 }),
        outstanding: 0,
      };
      this.#upstreams.set(slot.id, u);
    }
    return u;
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

  /** Eligible instances of a cell for a service, ordered: own region first, then nearest. */
  #eligible(live: LiveTable, service: string, cell: string, kind: InstanceSlot["kind"]): Upstream[][] {
    const byRegion: Upstream[][] = [];
    const groups = this.#slots.get(`${service}|${cell}|${kind}`);
    if (!groups) return byRegion;
    for (let r = 0; r < groups.length; r++) {
      const slots = groups[r] as InstanceSlot[];
      if (slots.length === 0 || live.drained.has(this.#order[r] as string)) continue;
      const list: Upstream[] = [];
      for (const slot of slots) {
        if (live.drained.has(slot.zone) || live.drained.has(slot.id)) continue;
        if (live.table.health[slot.id] === "unhealthy") continue;
        if (this.#outliers.isEjected(slot.id)) continue;
        list.push(this.#upstream(slot));
      }
      if (list.length > 0) byRegion.push(list);
    }
    return byRegion;
  }

  /** Least outstanding in the nearest region with a candidate not yet tried; another zone first for retries. */
  #choose(
    groups: Upstream[][],
    tried: ReadonlySet<string>,
    previous: Upstream | undefined,
  ): Upstream | undefined {
    for (const group of groups) {
      let best: Upstream | undefined;
      let bestScore = Number.POSITIVE_INFINITY;
      const n = group.length;
      const offset = this.#rotation++ % n;
      for (let k = 0; k < n; k++) {
        const u = group[(offset + k) % n] as Upstream;
        if (tried.has(u.slot.id)) continue;
        // Prefer another zone than the previous attempt's: same-zone failures are often shared.
        const score = u.outstanding * 2 + (previous && u.slot.zone === previous.slot.zone ? 1 : 0);
        if (score < bestScore) {
          best = u;
          bestScore = score;
        }
      }
      if (best) return best;
    }
    return undefined;
  }

  async #handle(req: IncomingRequest, res: OutgoingResponse): Promise<void> {
    const started = performance.now();
    const url = req.target;
    if (url.startsWith("/_ringfence/")) return await this.#admin(url, res);
    const head = readRequestHeaders(req.headers, this.#tenantHeader);
    const input = this.#tenantInput;
    input.headers[this.#tenantHeader] = head.tenant;
    input.path = url;
    const tenantResult = parseTenant(input, this.#tenantOptions);
    if (!tenantResult.ok) return this.#fail(res, 400, tenantResult.code, tenantResult.message);
    const live = this.#options.table.current();
    if (!live)
      return this.#fail(
        res,
        503,
        "RINGFENCE_NO_ROUTING_TABLE",
        "the router has no routing table yet (or it outlived its last-known-good TTL)",
        1,
      );
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
      return this.#fail(
        res,
        503,
        "RINGFENCE_SHED",
        `${cell} has too many requests in flight at this router; retry shortly`,
        1,
      );
    }
    this.#budget.requestStarted();
    try {
      let body: Buffer | undefined;
      if (method !== "GET" && method !== "HEAD") {
        const read = req.hasBody ? await req.body() : EMPTY;
        if (read === "gone") return;
        if (read === "too-large") {
          record(413, this.#options.region, 0);
          return this.#fail(
            res,
            413,
            "RINGFENCE_BODY_TOO_LARGE",
            `request bodies are limited to ${this.#options.maxBodyBytes ?? 1 << 20} bytes`,
          );
        }
        body = read;
      }
      const idempotent = IDEMPOTENT.has(method) || head.idempotencyKey;
      const request: UpstreamRequest = {
        method,
        path,
        headerLines: upstreamLines(head, cell, this.#options.region, req.remoteAddress),
        body,
      };
      let groups = this.#eligible(live, match.service, cell, "service");
      let fallback = false;
      if (groups.length === 0 && this.#routes.fallback(match.service, method, route)) {
        groups = this.#eligible(live, match.service, cell, "fallback");
        fallback = true;
      }
      if (groups.length === 0) {
        record(503, this.#options.region, 0);
        return this.#fail(
          res,
          503,
          "RINGFENCE_NO_HEALTHY_INSTANCE",
          `no healthy instance of ${match.service} in ${cell} in any region`,
          1,
        );
      }
      const args: AttemptArgs = { groups, request, idempotent, match, cell, fallback };
      const deadline = performance.now() + this.#options.topology.routers.deadlineMs;
      const hedged = match.hedge && (method === "GET" || method === "HEAD");
      const first = hedged ? undefined : await this.#firstTry(args, res, deadline, record);
      if (first === "answered") return;
      const outcome = await this.#attempts(args, deadline, first);
      if (outcome.kind === "response") {
        await new Promise<void>((resolve) => this.#answer(res, outcome, record, resolve));
        return;
      }
      record(outcome.status, this.#options.region, outcome.retries);
      return this.#fail(
        res,
        outcome.status,
        outcome.code,
        outcome.message,
        outcome.status === 503 ? 1 : undefined,
      );
    } finally {
      this.#budget.requestFinished();
      this.#shedder.release(cell);
    }
  }

  /**
   * The first try, on callbacks rather than promises: a good answer is written to the client from
   * within the upstream's read, before any bookkeeping ("answered" once its body is through). A
   * failed try comes back for {@link #attempts} to judge and retry; undefined when there is no
   * instance to try.
   */
  #firstTry(
    args: AttemptArgs,
    res: OutgoingResponse,
    deadline: number,
    record: RecordFn,
  ): Promise<FirstTry | "answered" | undefined> {
    const upstream = this.#choose(args.groups, NOT_TRIED, undefined);
    if (!upstream) return Promise.resolve(undefined);
    const { tryTimeoutMs, maxAttempts } = this.#options.topology.routers;
    const timeoutMs = Math.min(deadline - performance.now(), tryTimeoutMs);
    const started = performance.now();
    upstream.outstanding++;
    return new Promise((resolve) => {
      const exchange = upstream.pool.request(
        args.request,
        { headersTimeoutMs: timeoutMs, bodyTimeoutMs: timeoutMs },
        (error, head) => {
          upstream.outstanding--;
          if (error || !head) {
            const failure = error as UpstreamError;
            resolve({
              upstream,
              started,
              result: { kind: "error", upstream, error: failure, notSent: failure.notSent },
            });
            return;
          }
          const { status, headers } = head;
          const failed = RETRYABLE_STATUS.has(status);
          if (failed && args.idempotent && maxAttempts > 1) {
            resolve({ upstream, started, result: { kind: "response", upstream, status, headers, exchange } });
            return;
          }
          if (failed) this.#outliers.recordFailure(upstream.slot.id);
          else {
            this.#outliers.recordSuccess(upstream.slot.id);
            this.#tracker(args.match.route).record(performance.now() - started);
          }
          this.#answer(res, { upstream, status, headers, exchange, retries: 0 }, record, () =>
            resolve("answered"),
          );
        },
      );
    });
  }

  /** Writes an upstream's answer to the client; `done` runs once its body is through. */
  #answer(
    res: OutgoingResponse,
    answer: { upstream: Upstream; status: number; headers: string[]; exchange: Exchange; retries: number },
    record: RecordFn,
    done: () => void,
  ): void {
    const out = responseHeaders(answer.headers);
    out.push("x-ringfence-cell", answer.upstream.slot.cell, "x-ringfence-served-by", answer.upstream.slot.id);
    if (answer.retries > 0) out.push("x-ringfence-retries", String(answer.retries));
    res.writeHead(answer.status, out);
    answer.exchange.pipe(res, () => {
      record(answer.status, answer.upstream.slot.region, answer.retries);
      done();
    });
  }

  async #attempts(
    args: AttemptArgs,
    deadline: number,
    first: FirstTry | undefined,
  ): Promise<
    | {
        kind: "response";
        upstream: Upstream;
        status: number;
        headers: string[];
        exchange: Exchange;
        retries: number;
      }
    | { kind: "failed"; status: number; code: string; message: string; retries: number }
  > {
    const { topology } = this.#options;
    const tried = new Set<string>();
    let previous: Upstream | undefined;
    let retries = 0;
    let previousNotSent = false;
    let last = "no attempt made";
    const tracker = this.#tracker(args.match.route);
    for (let attempt = 0; attempt < topology.routers.maxAttempts; attempt++) {
      let result: AttemptResult;
      let started: number;
      if (attempt === 0 && first !== undefined) {
        // The first try was made on the fast path (#firstTry) and did not answer well.
        tried.add(first.upstream.slot.id);
        result = first.result;
        started = first.started;
      } else {
        const upstream = this.#choose(args.groups, tried, previous);
        if (!upstream) break;
        // The budget protects upstreams from extra load; a try whose connection was refused added
        // none (nothing listened), so the try after it is free.
        const budgeted = attempt > 0 && !previousNotSent;
        if (budgeted && !this.#budget.tryAcquireRetry()) {
          last = `${last}; retry budget exhausted`;
          break;
        }
        if (attempt > 0) retries++;
        tried.add(upstream.slot.id);
        const remaining = deadline - performance.now();
        if (remaining <= 0) {
          if (budgeted) this.#budget.retryFinished();
          last = `${last}; overall deadline of ${topology.routers.deadlineMs} ms passed`;
          break;
        }
        const method = args.request.method;
        const hedgeAfter =
          args.match.hedge && (method === "GET" || method === "HEAD") ? tracker.p95() : undefined;
        const timeoutMs = Math.min(remaining, topology.routers.tryTimeoutMs);
        started = performance.now();
        result =
          hedgeAfter !== undefined
            ? await this.#hedged(upstream, args, timeoutMs, hedgeAfter, tried)
            : await this.#send(upstream, args.request, timeoutMs, attempt);
        if (budgeted) this.#budget.retryFinished();
      }
      previous = result.upstream;
      previousNotSent = result.kind === "error" && result.notSent;
      if (result.kind === "response") {
        const failed = RETRYABLE_STATUS.has(result.status);
        if (failed) this.#outliers.recordFailure(result.upstream.slot.id);
        else {
          this.#outliers.recordSuccess(result.upstream.slot.id);
          tracker.record(performance.now() - started);
        }
        if (!failed || !args.idempotent || attempt === topology.routers.maxAttempts - 1) {
          return {
            kind: "response",
            upstream: result.upstream,
            status: result.status,
            headers: result.headers,
            exchange: result.exchange,
            retries,
          };
        }
        result.exchange.discard();
        last = `${result.upstream.slot.id} answered ${result.status}`;
        const retryAfter = parseRetryAfter(headerValue(result.headers, "retry-after"), Date.now());
        await sleep(Math.min(retryAfter ?? retryDelayMs(attempt), Math.max(0, deadline - performance.now())));
        continue;
      }
      this.#outliers.recordFailure(result.upstream.slot.id);
      last = `${result.upstream.slot.id}: ${result.error.code ?? result.error.message}`;
      if (!args.idempotent && !result.notSent) {
        return {
          kind: "failed",
          status: 502,
          code: "RINGFENCE_UPSTREAM_FAILED",
          message: `${last} (not retried: the request is not idempotent and may have been received)`,
          retries,
        };
      }
      await sleep(Math.min(retryDelayMs(attempt), Math.max(0, deadline - performance.now())));
    }
    return {
      kind: "failed",
      status: 503,
      code: "RINGFENCE_NO_HEALTHY_INSTANCE",
      message: `no instance of ${args.match.service} in ${args.cell} answered: ${last}`,
      retries,
    };
  }

  /**
   * A try, and if it has not answered after `hedgeAfterMs`, a second one to another region. The
   * first good answer wins and the other try is cancelled; a failed try waits for the other.
   */
  async #hedged(
    primary: Upstream,
    args: AttemptArgs,
    timeoutMs: number,
    hedgeAfterMs: number,
    tried: Set<string>,
  ): Promise<AttemptResult> {
    const good = (r: AttemptResult) => r.kind === "response" && !RETRYABLE_STATUS.has(r.status);
    let primaryExchange: Exchange | undefined;
    const first = this.#send(primary, args.request, timeoutMs, 0, (e) => {
      primaryExchange = e;
    }).then((r) => ({ from: "primary" as const, r }));
    let hedgeExchange: Exchange | undefined;
    // The started hedge travels wrapped in an object: a promise resolved with a promise would be
    // flattened, and awaiting "started" would wait for the hedge to finish.
    type Hedge = { readonly done: Promise<{ from: "hedge"; r: AttemptResult }> } | undefined;
    let startHedge: (h: Hedge) => void = () => {};
    const hedgeStarted = new Promise<Hedge>((resolve) => {
      startHedge = resolve;
    });
    const timer = setTimeout(() => {
      const other = args.groups
        .flat()
        .find((u) => u.slot.region !== primary.slot.region && !tried.has(u.slot.id));
      if (!other || !this.#budget.tryAcquireRetry()) return startHedge(undefined);
      tried.add(other.slot.id);
      const hedge = this.#send(other, args.request, timeoutMs, 1, (e) => {
        hedgeExchange = e;
      })
        .finally(() => this.#budget.retryFinished())
        .then((r) => ({ from: "hedge" as const, r }));
      startHedge({ done: hedge });
    }, hedgeAfterMs);
    const early = await Promise.race([first, hedgeStarted.then(() => undefined)]);
    if (early) {
      clearTimeout(timer);
      return early.r;
    }
    const started = await hedgeStarted;
    if (!started) return (await first).r;
    const hedge = started.done;
    const a = await Promise.race([first, hedge]);
    const other = a.from === "primary" ? hedge : first;
    const cancelOther = () => {
      (a.from === "primary" ? hedgeExchange : primaryExchange)?.abort();
      void other.then(({ r }) => {
        if (r.kind === "response") r.exchange.discard();
      });
    };
    if (good(a.r)) {
      cancelOther();
      return a.r;
    }
    const b = await other;
    if (good(b.r)) {
      if (a.r.kind === "response") a.r.exchange.discard();
      return b.r;
    }
    if (b.r.kind === "response") b.r.exchange.discard();
    return a.r;
  }

  /** One try: resolves with the response head, or the error that ended the try before it. */
  #send(
    upstream: Upstream,
    request: UpstreamRequest,
    timeoutMs: number,
    attempt = 0,
    started?: (exchange: Exchange) => void,
  ): Promise<AttemptResult> {
    upstream.outstanding++;
    const sent: UpstreamRequest =
      attempt === 0
        ? request
        : { ...request, headerLines: `${request.headerLines}x-ringfence-attempt: ${attempt}\r\n` };
    return new Promise((resolve) => {
      const exchange = upstream.pool.request(
        sent,
        { headersTimeoutMs: timeoutMs, bodyTimeoutMs: timeoutMs },
        (error, head) => {
          upstream.outstanding--;
          if (error || !head)
            resolve({ kind: "error", upstream, error: error as Error, notSent: error?.notSent ?? false });
          else resolve({ kind: "response", upstream, status: head.status, headers: head.headers, exchange });
        },
      );
      started?.(exchange);
    });
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
    return this.#fail(res, 404, "RINGFENCE_NOT_FOUND", `no such router endpoint: ${url}`);
  }

  #fail(res: OutgoingResponse, status: number, code: string, message: string, retryAfter?: number): void {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    json(
      res,
      status,
      { error: { code, message } },
      retryAfter === undefined ? [] : ["retry-after", String(retryAfter)],
    );
  }

  async close(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    if (server) await server.close();
    for (const u of this.#upstreams.values()) u.pool.close();
    this.#upstreams.clear();
  }
}

function json(res: OutgoingResponse, status: number, body: unknown, headers: readonly string[] = []): void {
  res.respond(status, ["content-type", "application/json", ...headers], JSON.stringify(body));
}

function sleep(ms: number): Promise<void> {
  return ms <= 0 ? Promise.resolve() : new Promise((r) => setTimeout(r, ms));
}
