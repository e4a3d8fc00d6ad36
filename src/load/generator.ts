/**
 * A load run: open-loop arrivals (see open-loop.ts), each a write (`PUT /users/<unique id>`) with
 * probability `writeRatio` or a read of an id acknowledged earlier for the same tenant, sent to the
 * routers in turn. Every acknowledged write goes to the ledger; writes that were sent but never
 * answered (or answered with a status that leaves the commit in doubt) are counted as unknown outcome.
 */
import { Random } from "../lib/random.js";
import { errorCodeOf, HttpClient, type HttpResult, header, type Target } from "./http.js";
import type { LedgerEntry } from "./ledger.js";
import {
  type Arrival,
  DEFAULT_MAX_IN_FLIGHT,
  type LoopClock,
  runOpenLoop,
  systemClock,
} from "./open-loop.js";
import { type ArrivalProcess, arrivalOffsets } from "./schedule.js";
import { type Labels, LoadStats, type Outcome, type StatsSummary, type WindowSummary } from "./stats.js";
import type { LoadTenant } from "./tenants.js";

export interface LoadPlan {
  /** Arrivals per second. */
  readonly rps: number;
  readonly durationMs: number;
  /** Probability in [0, 1] that an arrival is a write. */
  readonly writeRatio: number;
  readonly tenants: readonly LoadTenant[];
  /** Routers to use in turn (round robin). */
  readonly routers: readonly Target[];
  /** Deadline of each request. */
  readonly timeoutMs: number;
  /** Unique per run: write ids are `w-<runId>-<seq>`. */
  readonly runId: string;
  /** The topology service that owns `/users/:id`; the summary's per-service grouping. */
  readonly service: string;
  /** Default 2,000. */
  readonly maxInFlight?: number;
  /** Default `uniform`. */
  readonly arrivals?: ArrivalProcess;
  /** Seed of the arrival gaps and of tenant and operation choices. Default 1. */
  readonly seed?: number;
  /** The header routers read the tenant from (topology `routers.tenantHeader`); `X-Tenant` is always sent too. */
  readonly tenantHeader?: string;
  /** When set, the tenant goes in the path after this prefix (topology `routers.tenantPathPrefix`). */
  readonly tenantPathPrefix?: string;
}

/** Progress once a second. */
export interface LoadProgress {
  readonly elapsedMs: number;
  /** Requests finished in the window and their latency. */
  readonly window: WindowSummary;
  readonly windowMs: number;
  readonly inFlight: number;
  readonly acknowledgedWrites: number;
}

export interface LoadDeps {
  /** Where acknowledged writes go (a LedgerWriter). */
  readonly ledger: { append(entry: LedgerEntry): void };
  readonly clock?: LoopClock;
  /** Stops the schedule early (e.g. on Ctrl-C); requests in flight still finish. */
  readonly signal?: AbortSignal;
  readonly onProgress?: (progress: LoadProgress) => void;
  /** Default: a keep-alive client of its own, closed at the end. */
  readonly client?: HttpClient;
  /** Default 1,000. */
  readonly progressIntervalMs?: number;
}

export interface LoadSummary {
  readonly runId: string;
  readonly startedAt: string;
  readonly finishedAt: string;
  /** Wall time of the run, including the wait for the last answers. */
  readonly elapsedMs: number;
  readonly arrivals: ArrivalProcess;
  readonly targetRps: number;
  /** Arrivals started per second of the schedule. */
  readonly achievedRps: number;
  readonly scheduled: number;
  readonly started: number;
  /** Arrivals that found `maxInFlight` requests in flight (also counted as `client-overload` errors). */
  readonly dropped: number;
  /** How far the client itself fell behind the schedule, at worst. */
  readonly maxStartLagMs: number;
  readonly maxInFlight: number;
  readonly tenants: number;
  readonly writes: {
    readonly attempted: number;
    readonly acknowledged: number;
    readonly failed: number;
    /** Sent, then timed out, cut off, or answered 500/502/504 or 503 WRITE_NOT_CONFIRMED: may or may not be committed. */
    readonly unknownOutcome: number;
  };
  readonly reads: {
    readonly attempted: number;
    /** Reads of an acknowledged id (with `x-ringfence-min-lsn`) that answered 404 or other content. */
    readonly stale: number;
  };
  readonly stats: StatsSummary;
}

/** The deterministic content of a write, so that an audit can check it from the id alone. */
export function userContent(id: string): { name: string; email: string } {
  return { name: `Load ${id}`, email: `${id}@load.ringfence.test` };
}

/** Acknowledged ids kept per tenant for reads; older ones are replaced at random beyond this. */
const KEEP_PER_TENANT = 1_000;

interface Acked {
  readonly id: string;
  readonly lsn: string;
  readonly name: string;
  readonly email: string;
}

/** What an arrival does, chosen when it comes due (also for arrivals dropped by the cap). */
interface Job {
  readonly tenant: LoadTenant;
  readonly router: Target;
  readonly write: boolean;
  readonly labels: Labels;
}

function unknownWriteStatus(status: number, code: string | undefined): boolean {
  // 500/502/504 and a 503 WRITE_NOT_CONFIRMED may follow a commit; other refusals happen before any.
  return (
    status === 500 || status === 502 || status === 504 || (status === 503 && code === "WRITE_NOT_CONFIRMED")
  );
}

/** Runs the plan and resolves with its summary once the last request has finished. */
export async function runLoad(plan: LoadPlan, deps: LoadDeps): Promise<LoadSummary> {
  if (plan.tenants.length === 0) throw new RangeError("a load run needs at least one tenant");
  if (plan.routers.length === 0) throw new RangeError("a load run needs at least one router");
  const clock = deps.clock ?? systemClock;
  const client = deps.client ?? new HttpClient();
  const random = new Random((plan.seed ?? 1) ^ 0x5bd1e995);
  const stats = new LoadStats();
  const acked = new Map<string, Acked[]>();
  const maxInFlight = plan.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT;
  const tenantHeader = plan.tenantHeader ?? "x-tenant";
  const counts = { writes: 0, acknowledged: 0, failedWrites: 0, unknown: 0, reads: 0, stale: 0, inFlight: 0 };
  let nextRouter = 0;
  let nextWrite = 0;

  const pathFor = (tenant: string, id: string) =>
    `${plan.tenantPathPrefix ? `${plan.tenantPathPrefix}${encodeURIComponent(tenant)}` : ""}/users/${encodeURIComponent(id)}`;
  const headersFor = (tenant: string): Record<string, string> => ({
    "x-tenant": tenant,
    [tenantHeader]: tenant,
  });

  const jobOf = (): Job => {
    const tenant = plan.tenants[Math.floor(random.next() * plan.tenants.length)] as LoadTenant;
    const router = plan.routers[nextRouter++ % plan.routers.length] as Target;
    const write = random.next() < plan.writeRatio;
    return {
      tenant,
      router,
      write,
      labels: {
        service: plan.service,
        cell: tenant.cell,
        region: router.region,
        operation: write ? "write" : "read",
      },
    };
  };

  const remember = (tenant: string, entry: Acked) => {
    let list = acked.get(tenant);
    if (!list) {
      list = [];
      acked.set(tenant, list);
    }
    if (list.length < KEEP_PER_TENANT) list.push(entry);
    else list[Math.floor(random.next() * list.length)] = entry;
  };

  const failure = (result: HttpResult & { kind: "failure" }): Outcome => ({
    ok: false,
    errorClass: result.errorClass,
  });

  const write = async (job: Job): Promise<Outcome> => {
    counts.writes++;
    const id = `w-${plan.runId}-${nextWrite++}`;
    const content = userContent(id);
    const result = await client.send({
      target: job.router,
      method: "PUT",
      path: pathFor(job.tenant.tenant, id),
      headers: headersFor(job.tenant.tenant),
      body: JSON.stringify(content),
      timeoutMs: plan.timeoutMs,
    });
    if (result.kind === "failure") {
      if (result.sent) counts.unknown++;
      else counts.failedWrites++;
      return failure(result);
    }
    if (result.status !== 200) {
      if (unknownWriteStatus(result.status, errorCodeOf(result.body))) counts.unknown++;
      else counts.failedWrites++;
      return { ok: false, errorClass: `http-${result.status}` };
    }
    let lsn = header(result.headers, "x-ringfence-commit-lsn");
    if (lsn === undefined) {
      try {
        lsn = String((JSON.parse(result.body) as { lsn?: unknown }).lsn ?? "0/0");
      } catch {
        lsn = "0/0";
      }
    }
    deps.ledger.append({
      id,
      tenant: job.tenant.tenant,
      cell: header(result.headers, "x-ringfence-cell") ?? job.tenant.cell,
      name: content.name,
      email: content.email,
      lsn,
      router: job.router.region,
      servedBy: header(result.headers, "x-ringfence-served-by") ?? null,
      ackAt: new Date().toISOString(),
    });
    counts.acknowledged++;
    remember(job.tenant.tenant, { id, lsn, ...content });
    return { ok: true };
  };

  const read = async (job: Job): Promise<Outcome> => {
    counts.reads++;
    const known = acked.get(job.tenant.tenant);
    const target = known?.[Math.floor(random.next() * known.length)];
    const headers = headersFor(job.tenant.tenant);
    if (target) headers["x-ringfence-min-lsn"] = target.lsn;
    const result = await client.send({
      target: job.router,
      method: "GET",
      path: pathFor(job.tenant.tenant, target?.id ?? `missing-${plan.runId}`),
      headers,
      timeoutMs: plan.timeoutMs,
    });
    if (result.kind === "failure") return failure(result);
    if (result.status === 404 && !target) return { ok: true };
    if (result.status !== 200 && result.status !== 404)
      return { ok: false, errorClass: `http-${result.status}` };
    if (!target) return { ok: true };
    if (result.status === 404 || !sameContent(result.body, target)) {
      counts.stale++;
      return { ok: false, errorClass: "stale-read" };
    }
    return { ok: true };
  };

  const send = async (arrival: Arrival): Promise<void> => {
    const job = jobOf();
    counts.inFlight++;
    try {
      const outcome = await (job.write ? write(job) : read(job));
      stats.record(job.labels, { ...outcome, latencyMs: clock.now() - arrival.dueAt });
    } finally {
      counts.inFlight--;
    }
  };

  const dropped = (): void => {
    const job = jobOf();
    if (job.write) {
      counts.writes++;
      counts.failedWrites++;
    } else counts.reads++;
    stats.record(job.labels, { ok: false, errorClass: "client-overload" });
  };

  const startedAt = new Date();
  const t0 = clock.now();
  let lastTick = t0;
  const progressTimer = deps.onProgress
    ? setInterval(() => {
        const now = clock.now();
        deps.onProgress?.({
          elapsedMs: now - t0,
          window: stats.takeWindow(),
          windowMs: now - lastTick,
          inFlight: counts.inFlight,
          acknowledgedWrites: counts.acknowledged,
        });
        lastTick = now;
      }, deps.progressIntervalMs ?? 1_000)
    : undefined;
  progressTimer?.unref();
  let result: Awaited<ReturnType<typeof runOpenLoop>>;
  try {
    result = await runOpenLoop({
      offsets: arrivalOffsets({
        rps: plan.rps,
        durationMs: plan.durationMs,
        process: plan.arrivals ?? "uniform",
        seed: plan.seed ?? 1,
      }),
      maxInFlight,
      send,
      dropped,
      clock,
      ...(deps.signal ? { signal: deps.signal } : {}),
    });
  } finally {
    if (progressTimer) clearInterval(progressTimer);
    if (!deps.client) client.close();
  }
  const elapsedMs = clock.now() - t0;
  const scheduleMs = Math.min(plan.durationMs, elapsedMs);
  return {
    runId: plan.runId,
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    elapsedMs: Math.round(elapsedMs),
    arrivals: plan.arrivals ?? "uniform",
    targetRps: plan.rps,
    achievedRps: scheduleMs > 0 ? Math.round((result.started / scheduleMs) * 1000 * 10) / 10 : 0,
    scheduled: result.scheduled,
    started: result.started,
    dropped: result.dropped,
    maxStartLagMs: Math.round(result.maxStartLagMs * 100) / 100,
    maxInFlight,
    tenants: plan.tenants.length,
    writes: {
      attempted: counts.writes,
      acknowledged: counts.acknowledged,
      failed: counts.failedWrites,
      unknownOutcome: counts.unknown,
    },
    reads: { attempted: counts.reads, stale: counts.stale },
    stats: stats.summary(),
  };
}

function sameContent(body: string, expected: Acked): boolean {
  try {
    const user = (JSON.parse(body) as { user?: { name?: unknown; email?: unknown } }).user;
    return user?.name === expected.name && user?.email === expected.email;
  } catch {
    return false;
  }
}
