/**
 * The simple forwarding router of a local world's region: tenant → bucket → cell → an instance of
 * the cell, in this region first and then the nearest other region, healthy ones first. Idempotent
 * requests are retried on another instance after a connection failure or a 502/503/504; others only
 * when the connection was never made. The routing table comes from the controller every second and
 * is persisted, so the router keeps serving from it when the controller is down.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { createServer, type IncomingMessage, request, type Server, type ServerResponse } from "node:http";
import { dirname } from "node:path";
import type { Topology } from "../topology/model.js";
import { tenantBucket } from "../topology/placement.js";
import { decodeBucketTable, type RoutingTable } from "../world/contracts.js";
import { type InstanceSlot, type Layout, reach } from "../world/layout.js";

export interface RouterOptions {
  readonly region: string;
  readonly topology: Topology;
  readonly layout: Layout;
  readonly controllerUrl: string;
  /** Token for `GET /v1/routing` and router heartbeats (the agent token). */
  readonly token: string;
  /** Where the last-known routing table is kept. */
  readonly tableFile: string;
  /** Header that carries the tenant id. Default `x-tenant`. */
  readonly tenantHeader?: string;
  readonly refreshMs?: number;
}

const IDEMPOTENT = new Set(["GET", "HEAD", "PUT", "DELETE", "OPTIONS"]);
const TENANT_RE = /^[A-Za-z0-9._-]{1,128}$/;
const MAX_BODY = 1 << 20;
const TRY_TIMEOUT_MS = 15_000;
const MAX_TRIES = 3;

export class SimpleRouter {
  #options: RouterOptions;
  #server: Server | undefined;
  #table: RoutingTable | undefined;
  #buckets: Uint32Array | undefined;
  #stale = true;
  #timer: NodeJS.Timeout | undefined;
  #requests = 0;
  #errors = 0;
  #next = 0;
  #routes: { service: string; fallback: boolean; method: string; pattern: RegExp }[];
  #order: string[];

  constructor(options: RouterOptions) {
    this.#options = options;
    const own = options.topology.regions.find((r) => r.name === options.region);
    if (!own) throw new Error(`unknown region ${options.region}`);
    this.#order = [
      own.name,
      ...options.topology.regions
        .filter((r) => r.name !== own.name)
        .sort((a, b) => (own.latencyMs[a.name] ?? 0) - (own.latencyMs[b.name] ?? 0))
        .map((r) => r.name),
    ];
    this.#routes = options.topology.services.flatMap((s) => [
      ...s.slos.flatMap((slo) =>
        slo.routes.map((r) => ({ service: s.name, fallback: false, ...compile(r) })),
      ),
      ...(s.fallback?.routes.map((r) => ({ service: s.name, fallback: true, ...compile(r) })) ?? []),
    ]);
    if (existsSync(options.tableFile)) {
      try {
        this.#setTable(JSON.parse(readFileSync(options.tableFile, "utf8")) as RoutingTable, false);
      } catch {
        // a torn file: wait for the controller
      }
    }
  }

  async start(): Promise<void> {
    await this.#refresh();
    const { host, port } = this.#endpoint();
    const server = createServer((req, res) => {
      void this.#handle(req, res);
    });
    server.headersTimeout = 10_000;
    server.requestTimeout = 60_000;
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, host, () => resolve());
    });
    this.#server = server;
    const loop = () => {
      this.#timer = setTimeout(() => {
        void this.#refresh().finally(loop);
      }, this.#options.refreshMs ?? 1_000);
    };
    loop();
  }

  #endpoint() {
    const region = this.#options.layout.regions.find((r) => r.name === this.#options.region);
    if (!region) throw new Error(`unknown region ${this.#options.region}`);
    return region.router;
  }

  async #refresh(): Promise<void> {
    const { controllerUrl, token, region } = this.#options;
    try {
      const res = await fetch(`${controllerUrl}/v1/routing`, {
        headers: { authorization: `Bearer ${token}` },
        signal: AbortSignal.timeout(2_000),
      });
      if (!res.ok) throw new Error(`controller answered ${res.status}`);
      this.#setTable((await res.json()) as RoutingTable, true);
      this.#stale = false;
    } catch {
      this.#stale = true;
    }
    try {
      const res = await fetch(`${controllerUrl}/v1/routers/${encodeURIComponent(region)}/heartbeat`, {
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: JSON.stringify({
          region,
          pid: process.pid,
          tableVersion: this.#table?.version ?? 0,
          stale: this.#stale,
          requests: this.#requests,
          errors: this.#errors,
        }),
        signal: AbortSignal.timeout(2_000),
      });
      await res.arrayBuffer();
    } catch {
      // status will show the router as silent
    }
  }

  #setTable(table: RoutingTable, persist: boolean): void {
    const changed = this.#table?.version !== table.version || this.#table?.generatedAt !== table.generatedAt;
    this.#table = table;
    this.#buckets = decodeBucketTable(table.bucketTable);
    if (persist && changed) {
      mkdirSync(dirname(this.#options.tableFile), { recursive: true });
      const tmp = `${this.#options.tableFile}.tmp`;
      writeFileSync(tmp, JSON.stringify(table));
      renameSync(tmp, this.#options.tableFile);
    }
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    this.#requests++;
    const url = req.url ?? "/";
    if (url === "/_ringfence/health") {
      return json(res, 200, {
        status: this.#table ? "ok" : "no-table",
        region: this.#options.region,
        stale: this.#stale,
        tableVersion: this.#table?.version ?? 0,
      });
    }
    const tenant = req.headers[this.#options.tenantHeader ?? "x-tenant"];
    if (typeof tenant !== "string" || !TENANT_RE.test(tenant)) {
      return this.#fail(
        res,
        400,
        "RINGFENCE_BAD_TENANT",
        `the ${this.#options.tenantHeader ?? "X-Tenant"} header must hold a tenant id of 1-128 letters, digits, '.', '_' or '-'`,
      );
    }
    const table = this.#table;
    const buckets = this.#buckets;
    if (!table || !buckets)
      return this.#fail(res, 503, "RINGFENCE_NO_ROUTING_TABLE", "no routing table yet", 1);
    const cell = `cell-${buckets[tenantBucket(tenant, buckets.length)]}`;
    const method = req.method ?? "GET";
    const path = url.split("?")[0] ?? "/";
    const route = this.#routes.find(
      (r) => !r.fallback && (r.method === "*" || r.method === method) && r.pattern.test(path),
    );
    const service = route?.service ?? this.#options.topology.services[0]?.name;
    let body: Buffer;
    try {
      body = await readBody(req);
    } catch {
      return this.#fail(
        res,
        413,
        "RINGFENCE_BODY_TOO_LARGE",
        `request bodies are limited to ${MAX_BODY} bytes`,
      );
    }
    const fallbackRoute = this.#routes.some(
      (r) =>
        r.fallback &&
        r.service === service &&
        (r.method === "*" || r.method === method) &&
        r.pattern.test(path),
    );
    const candidates = [
      ...this.#candidates(service, cell, "service"),
      ...(fallbackRoute ? this.#candidates(service, cell, "fallback") : []),
    ];
    const idempotent = IDEMPOTENT.has(method) || req.headers["idempotency-key"] !== undefined;
    let tries = 0;
    for (const instance of candidates) {
      if (tries >= MAX_TRIES) break;
      tries++;
      const result = await this.#forward(req, body, instance, cell);
      if (result.kind === "response") {
        const retryable = idempotent && [502, 503, 504].includes(result.status);
        if (!retryable || tries >= MAX_TRIES) {
          res.writeHead(result.status, {
            ...result.headers,
            "x-ringfence-cell": cell,
            "x-ringfence-served-by": instance.id,
          });
          res.end(result.body);
          if (result.status >= 500) this.#errors++;
          return;
        }
      } else if (!(idempotent || result.beforeConnect)) {
        return this.#fail(res, 502, "RINGFENCE_UPSTREAM_FAILED", `${instance.id}: ${result.message}`);
      }
    }
    return this.#fail(
      res,
      503,
      "RINGFENCE_NO_HEALTHY_INSTANCE",
      `no instance of ${service} in ${cell} answered`,
      1,
    );
  }

  /** Instances of a service in a cell: by region (own, then nearest), healthy ones first, rotating. */
  #candidates(service: string | undefined, cell: string, kind: InstanceSlot["kind"]): InstanceSlot[] {
    const health = this.#table?.health ?? {};
    const rank = (h: string | undefined) =>
      h === "healthy" ? 0 : h === "unknown" || h === undefined ? 1 : 2;
    const all = this.#options.layout.instances.filter(
      (i) => i.service === service && i.cell === cell && i.kind === kind,
    );
    const start = this.#next++;
    const out: InstanceSlot[] = [];
    for (const region of this.#order) {
      const here = all.filter((i) => i.region === region);
      const rotated = here.map((_, k) => here[(start + k) % here.length] as InstanceSlot);
      out.push(...rotated.sort((a, b) => rank(health[a.id]) - rank(health[b.id])));
    }
    // Unhealthy instances go last overall, whatever their region.
    return [...out.filter((i) => rank(health[i.id]) < 2), ...out.filter((i) => rank(health[i.id]) === 2)];
  }

  #forward(
    req: IncomingMessage,
    body: Buffer,
    instance: InstanceSlot,
    cell: string,
  ): Promise<
    | { kind: "response"; status: number; headers: Record<string, string | string[]>; body: Buffer }
    | { kind: "error"; message: string; beforeConnect: boolean }
  > {
    const target = reach(this.#options.layout, this.#options.region, instance.region, instance);
    return new Promise((resolve) => {
      let connected = false;
      const headers: Record<string, string | string[]> = {};
      for (const [k, v] of Object.entries(req.headers))
        if (v !== undefined && k !== "host" && k !== "connection") headers[k] = v;
      headers["x-ringfence-cell"] = cell;
      headers["x-ringfence-router-region"] = this.#options.region;
      headers["content-length"] = String(body.length);
      const upstream = request(
        {
          host: target.host,
          port: target.port,
          method: req.method,
          path: req.url,
          headers,
          timeout: TRY_TIMEOUT_MS,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () => {
            const out: Record<string, string | string[]> = {};
            for (const [k, v] of Object.entries(res.headers))
              if (v !== undefined && k !== "connection" && k !== "transfer-encoding") out[k] = v;
            resolve({
              kind: "response",
              status: res.statusCode ?? 502,
              headers: out,
              body: Buffer.concat(chunks),
            });
          });
          res.on("error", (err) => resolve({ kind: "error", message: err.message, beforeConnect: false }));
        },
      );
      upstream.on("socket", (s) => s.once("connect", () => (connected = true)));
      upstream.on("timeout", () => upstream.destroy(new Error(`no answer within ${TRY_TIMEOUT_MS} ms`)));
      upstream.on("error", (err) =>
        resolve({ kind: "error", message: err.message, beforeConnect: !connected }),
      );
      upstream.end(body);
    });
  }

  #fail(res: ServerResponse, status: number, code: string, message: string, retryAfter?: number): void {
    if (status >= 500) this.#errors++;
    json(
      res,
      status,
      { error: { code, message } },
      retryAfter === undefined ? {} : { "retry-after": String(retryAfter) },
    );
  }

  async close(): Promise<void> {
    if (this.#timer) clearTimeout(this.#timer);
    const server = this.#server;
    this.#server = undefined;
    if (server) {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    }
  }
}

function compile(route: { method: string; path: string }): { method: string; pattern: RegExp } {
  const source = route.path
    .split("/")
    .map((seg) => (seg.startsWith(":") ? "[^/]+" : seg.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")))
    .join("/");
  return { method: route.method, pattern: new RegExp(`^${source}$`) };
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(new Error("too large"));
        req.destroy();
      } else chunks.push(c);
    });
    req.on("end", () => resolve(Buffer.concat(chunks)));
    req.on("error", reject);
  });
}

function json(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}
