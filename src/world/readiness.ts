/**
 * When a starting world counts as ready: every region's router gets a healthy answer from an instance
 * of every cell. The question asked is the service's own health path (the topology's `health`),
 * through the router with a probe tenant placed on the cell, so any service is judged, not only the
 * bundled demo. `until` polls a check with a deadline and fails with `RINGFENCE_WORLD_START_FAILED`.
 */

import { type Problem, RingfenceError } from "../lib/errors.js";
import { type HttpAnswer, httpRequest } from "../lib/http-request.js";
import { RouteTable } from "../router/routes.js";
import type { Topology } from "../topology/model.js";
import { defaultBucketTable, tenantBucket } from "../topology/placement.js";
import type { Layout } from "./layout.js";

/** One tenant id per cell (under the default bucket table) for readiness probes. */
export function probeTenants(topology: Topology): { cell: string; tenant: string }[] {
  const table = defaultBucketTable(topology.cells.buckets, topology.cells.count);
  const found = new Map<number, string>();
  for (let i = 0; found.size < topology.cells.count && i < 1_000_000; i++) {
    const tenant = `probe-${i}`;
    const cell = table[tenantBucket(tenant, table.length)] as number;
    if (!found.has(cell)) found.set(cell, tenant);
  }
  return [...found].sort((a, b) => a[0] - b[0]).map(([cell, tenant]) => ({ cell: `cell-${cell}`, tenant }));
}

/** A request that proves a service serves: `GET path`, which the router sends to `service`. */
export interface ReadinessProbe {
  readonly path: string;
  readonly service: string;
}

/**
 * One probe per distinct health path of the topology's services. The service it judges is the one
 * the router sends that path to (the same route matching the router uses): a health path that no
 * route claims goes to the first service, as every unmatched path does.
 */
export function readinessProbes(topology: Topology): ReadinessProbe[] {
  const routes = new RouteTable(topology);
  const probes = new Map<string, ReadinessProbe>();
  for (const s of topology.services) {
    if (probes.has(s.healthPath)) continue;
    probes.set(s.healthPath, { path: s.healthPath, service: routes.match("GET", s.healthPath).service });
  }
  return [...probes.values()];
}

export interface UntilOptions {
  readonly timeoutMs: number;
  /** Poll interval. Default 200 ms. */
  readonly everyMs?: number;
  /** Stops the wait at once, rejecting with the signal's reason. */
  readonly signal?: AbortSignal;
  /** The error (or the message of a `RINGFENCE_WORLD_START_FAILED`) to fail with after `timeoutMs`. */
  readonly failure: () => RingfenceError | string;
}

/** Polls `check` until it is true; a throw counts as not yet. */
export async function until(check: () => Promise<boolean>, options: UntilOptions): Promise<void> {
  const deadline = Date.now() + options.timeoutMs;
  const { signal } = options;
  while (true) {
    signal?.throwIfAborted();
    try {
      if (await check()) return;
    } catch {
      // not yet
    }
    signal?.throwIfAborted();
    if (Date.now() > deadline) {
      const failure = options.failure();
      throw typeof failure === "string"
        ? new RingfenceError("RINGFENCE_WORLD_START_FAILED", failure)
        : failure;
    }
    await sleep(options.everyMs ?? 200, signal);
  }
}

/** Resolves after `ms`, or at once when `signal` aborts (the caller checks it). */
function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}

/** A (region, cell) pair that got no healthy answer through its router, and what it got instead. */
export interface UnservedPair {
  readonly region: string;
  readonly cell: string;
  /** The last answer, e.g. `503 RINGFENCE_NO_HEALTHY_INSTANCE: no healthy instance of …`. */
  readonly lastAnswer: string;
}

export interface ServingOptions {
  readonly timeoutMs: number;
  readonly progress: (line: string) => void;
  /** Stops waiting at once (the world is being stopped). */
  readonly signal?: AbortSignal;
  /** The log lines that say why these pairs did not serve, listed in the error. */
  readonly explain: (unserved: readonly UnservedPair[]) => Problem[];
  /** Named in the error as where to read more. */
  readonly logs: string;
}

/**
 * Waits until every region's router gets a healthy answer (2xx, from an instance of the probed
 * service, not its fallback) to every readiness probe for every cell, reporting each change in how
 * many (region, cell) pairs do. After `timeoutMs`, fails with `RINGFENCE_WORLD_START_FAILED` naming
 * the pairs that do not, each with the router's last answer and the log lines `explain` finds.
 */
export async function waitUntilServing(
  layout: Layout,
  topology: Topology,
  options: ServingOptions,
): Promise<void> {
  const tenants = probeTenants(topology);
  const probes = readinessProbes(topology);
  const pending = new Map<string, UnservedPair>();
  for (const region of layout.regions) {
    for (const { cell } of tenants) {
      pending.set(`${region.name}/${cell}`, { region: region.name, cell, lastAnswer: "not asked yet" });
    }
  }
  const total = pending.size;
  let reported = -1;
  const ask = async (pair: UnservedPair): Promise<string | undefined> => {
    const region = layout.regions.find((r) => r.name === pair.region);
    const tenant = tenants.find((p) => p.cell === pair.cell)?.tenant;
    if (!region || !tenant) return "no router or probe tenant";
    for (const probe of probes) {
      const wrong = await askRouter(`http://${region.router.host}:${region.router.port}`, tenant, probe);
      if (wrong !== undefined) return wrong;
    }
    return undefined;
  };
  await until(
    async () => {
      await Promise.all(
        [...pending].map(async ([key, pair]) => {
          const wrong = await ask(pair);
          if (wrong === undefined) pending.delete(key);
          else pending.set(key, { ...pair, lastAnswer: wrong });
        }),
      );
      const ready = total - pending.size;
      if (ready !== reported) {
        reported = ready;
        options.progress(`serving: ${ready}/${total} (region, cell) pairs answer through their router`);
      }
      return pending.size === 0;
    },
    {
      timeoutMs: options.timeoutMs,
      everyMs: 500,
      ...(options.signal ? { signal: options.signal } : {}),
      failure: () => {
        const unserved = [...pending.values()];
        const answers: Problem[] = unserved.map((p) => ({
          path: `${p.region}/${p.cell}`,
          message: `the router of ${p.region} answered ${p.lastAnswer}`,
        }));
        return new RingfenceError(
          "RINGFENCE_WORLD_START_FAILED",
          `the world did not serve within ${options.timeoutMs / 1000} s: ${unserved.length} of ${total} (region, cell) pairs got no healthy answer through their router: ${unserved.map((p) => `${p.region}/${p.cell}`).join(", ")}. Everything the start had started is stopped. Below, what each router answered and the log lines that say why (all logs: ${options.logs}):`,
          { problems: [...answers, ...options.explain(unserved)] },
        );
      },
    },
  );
}

/** Asks a router for `probe` as `tenant`; undefined when the answer is healthy, else what it was. */
async function askRouter(router: string, tenant: string, probe: ReadinessProbe): Promise<string | undefined> {
  let res: HttpAnswer;
  let body: string;
  try {
    res = await httpRequest(`${router}${probe.path}`, {
      headers: { "x-tenant": tenant },
      signal: AbortSignal.timeout(2_000),
    });
    body = await res.text();
  } catch (err) {
    return `nothing to GET ${probe.path} (${(err as { code?: string }).code ?? (err as Error).message})`;
  }
  const header = res.headers["x-ringfence-served-by"];
  const servedBy = typeof header === "string" ? header : undefined;
  if (res.ok && servedBy?.startsWith(`${probe.service}/`)) return undefined;
  const from = servedBy ? ` from ${servedBy}` : "";
  return `${res.status}${from} to GET ${probe.path}${describeBody(body)}`;
}

/** `: CODE: message` of a ringfence error body, or the start of any other body. */
function describeBody(body: string): string {
  try {
    const parsed = JSON.parse(body) as { error?: { code?: unknown; message?: unknown } };
    if (typeof parsed.error?.code === "string") {
      return `: ${parsed.error.code}: ${String(parsed.error.message ?? "")}`;
    }
  } catch {
    // not JSON
  }
  const text = body.trim().replace(/\s+/g, " ");
  return text === "" ? "" : `: ${text.length > 160 ? `${text.slice(0, 160)}…` : text}`;
}
