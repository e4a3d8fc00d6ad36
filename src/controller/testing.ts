/**
 * Helpers for controller tests: tokens, a settable clock, heartbeats that report every process
 * of a zone the way a healthy agent would, and a client for server-sent-event streams.
 */
import { request as httpRequest, type IncomingHttpHeaders } from "node:http";
import { after, before } from "node:test";
import { startTestCluster, type TestCluster } from "../lib/postgres-testing.js";
import type { Topology } from "../topology/model.js";
import type {
  AgentEvent,
  DatabaseReport,
  Heartbeat,
  ObserverProbe,
  ProcessReport,
} from "../world/contracts.js";
import type { Layout } from "../world/layout.js";
import { type Controller, type ControllerOptions, startController } from "./server.js";

export const TEST_TOKENS = {
  reader: "reader-token-0001",
  agent: "agent-token-0002",
  operator: "operator-token-0003",
} as const;

/** A clock that moves only when told. */
export class ManualClock {
  nowMs: number;
  constructor(start = Date.parse("2030-01-01T00:00:00.000Z")) {
    this.nowMs = start;
  }
  readonly now = (): number => this.nowMs;
  advance(ms: number): void {
    this.nowMs += ms;
  }
}

/**
 * A heartbeat from `zone` with every process placed there running and healthy, and for every
 * database placed there a replication report: primaries (in their cell's home region) list every
 * other replica as a streaming quorum standby.
 */
/**
 * `probes` as an observer in `zone` sends them, together with what else such an observer probes:
 * every cell's home primary outside its own region and outside the regions `probes` name, all
 * reached. (An observer that reaches nothing at all is no witness; see failover/detection.ts.)
 */
export function withOtherPrimariesReached(
  topology: Topology,
  zone: string,
  probes: readonly ObserverProbe[],
): ObserverProbe[] {
  const own = zone.split("/")[0];
  const named = new Set(probes.map((p) => p.target.split("/")[1]));
  const others = topology.cells.list
    .filter((c) => c.home !== own && !named.has(c.home))
    .map((c) => ({
      target: `${c.id}/${c.home}`,
      ok: true,
      consecutiveFailures: 0,
      latencyMs: 3,
      detail: "",
    }));
  return [...probes, ...others];
}

export function healthyHeartbeat(
  topology: Topology,
  layout: Layout,
  zone: string,
  extra: {
    desiredVersion?: number;
    events?: AgentEvent[];
    change?: (p: ProcessReport) => ProcessReport;
  } = {},
): Heartbeat {
  const since = "2030-01-01T00:00:00.000Z";
  const change = extra.change ?? ((p) => p);
  const processes: ProcessReport[] = [];
  const report = (kind: ProcessReport["kind"], id: string, pid: number): ProcessReport =>
    change({
      id: `${kind}:${id}`,
      kind,
      state: "running",
      pid,
      restarts: 0,
      health: "healthy",
      detail: "",
      since,
    });
  let pid = 1000;
  for (const d of layout.databases) if (d.zone === zone) processes.push(report("database", d.id, pid++));
  for (const w of layout.writers) if (w.zone === zone) processes.push(report("writer", w.id, pid++));
  for (const i of layout.instances) if (i.zone === zone) processes.push(report("instance", i.id, pid++));
  const databases: DatabaseReport[] = layout.databases
    .filter((d) => d.zone === zone)
    .map((d) => {
      const home = topology.cells.list.find((c) => c.id === d.cell)?.home;
      const primary = d.region === home;
      return {
        id: d.id,
        role: primary ? "primary" : "standby",
        lsn: "0/3000060",
        synchronousStandbyNames: primary ? "ANY 1 (standbys)" : null,
        standbys: primary
          ? layout.databases
              .filter((s) => s.cell === d.cell && s.id !== d.id)
              .map((s) => ({
                applicationName: s.applicationName,
                state: "streaming",
                syncState: "quorum",
                lagBytes: 128,
                flushLagMs: 2,
                replayLagMs: 3,
              }))
          : [],
      };
    });
  return {
    zone,
    pid: 4242,
    startedAt: since,
    desiredVersion: extra.desiredVersion ?? 1,
    processes,
    databases,
    events: extra.events ?? [],
  };
}

/** One server-sent event as received. */
export interface SseEvent {
  readonly event: string;
  readonly data: string;
}

/** A live SSE stream over a real socket, collecting what arrives until closed. */
export interface SseClient {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  /** Events received so far, in order. */
  readonly events: readonly SseEvent[];
  /** Comment lines (`: keep-alive`) received so far, without the colon. */
  readonly comments: readonly string[];
  /** The raw text received so far (the whole body for a refused stream). */
  text(): string;
  /** Resolves once the server ended the stream or the client closed it. */
  readonly ended: Promise<void>;
  /**
   * The first event at index `from` or later that `match` accepts, waiting for it up to `timeoutMs`
   * (5000 by default); rejects naming what arrived instead.
   */
  waitFor(
    match: (e: SseEvent) => boolean,
    options?: { from?: number; timeoutMs?: number },
  ): Promise<SseEvent & { index: number }>;
  /** Waits up to `timeoutMs` (5000 by default) for a comment that `match` accepts. */
  waitForComment(match: (comment: string) => boolean, timeoutMs?: number): Promise<void>;
  /** Closes the connection. */
  close(): void;
}

/** Opens `url` as an event stream with a bearer token; resolves once the response headers arrived. */
export function openSse(url: string, token: string): Promise<SseClient> {
  return new Promise((resolve, reject) => {
    const events: SseEvent[] = [];
    const comments: string[] = [];
    let text = "";
    let buffer = "";
    let wake: (() => void)[] = [];
    let endedResolve: () => void = () => {};
    const ended = new Promise<void>((r) => {
      endedResolve = r;
    });
    const waitUntil = async (done: () => boolean, timeoutMs: number, what: () => string) => {
      const deadline = Date.now() + timeoutMs;
      while (!done()) {
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what()}`);
        await new Promise<void>((r) => {
          const timer = setTimeout(r, Math.min(left, 50));
          wake.push(() => {
            clearTimeout(timer);
            r();
          });
        });
      }
    };
    // agent: false: the connection is the stream's own and closes with it.
    const req = httpRequest(
      url,
      { agent: false, headers: { authorization: `Bearer ${token}`, accept: "text/event-stream" } },
      (res) => {
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => {
          text += chunk;
          buffer += chunk;
          let end = buffer.indexOf("\n\n");
          while (end >= 0) {
            const block = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            let event = "message";
            const data: string[] = [];
            for (const line of block.split("\n")) {
              if (line.startsWith(":")) comments.push(line.slice(1).trim());
              else if (line.startsWith("event:")) event = line.slice(6).trim();
              else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
            }
            if (data.length > 0) events.push({ event, data: data.join("\n") });
            end = buffer.indexOf("\n\n");
          }
          const woken = wake;
          wake = [];
          for (const w of woken) w();
        });
        res.on("end", endedResolve);
        res.on("close", endedResolve);
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          events,
          comments,
          text: () => text,
          ended,
          async waitFor(match, options = {}) {
            const from = options.from ?? 0;
            const timeoutMs = options.timeoutMs ?? 5_000;
            const find = () => events.findIndex((e, i) => i >= from && match(e));
            await waitUntil(
              () => find() >= 0,
              timeoutMs,
              () => `a matching event after #${from}; got ${events.length} events: ${text.slice(-300)}`,
            );
            const index = find();
            return { ...(events[index] as SseEvent), index };
          },
          async waitForComment(match, timeoutMs = 5_000) {
            await waitUntil(
              () => comments.some(match),
              timeoutMs,
              () => `a matching comment; got ${JSON.stringify(comments)}`,
            );
          },
          close() {
            req.destroy();
            endedResolve();
          },
        });
      },
    );
    req.on("error", (err) => {
      endedResolve();
      reject(err);
    });
    req.end();
  });
}

/**
 * A controller on a fresh real control database, on loopback port 0, with the test tokens; `stop`
 * closes the controller and then stops PostgreSQL, even when closing fails; `restart` closes the
 * controller and starts another on the same database (what survives is what the database holds).
 */
export async function startTestController(
  options: Omit<ControllerOptions, "tokens" | "database" | "clock"> & { readonly clock: ManualClock },
): Promise<{
  cluster: TestCluster;
  controller: Controller;
  stop(): Promise<void>;
  restart(): Promise<void>;
}> {
  const cluster = await startTestCluster();
  const { clock, ...rest } = options;
  const start = () =>
    startController({
      host: "127.0.0.1",
      port: 0,
      ...rest,
      tokens: TEST_TOKENS,
      database: { host: cluster.primary.host, port: cluster.primary.port },
      clock: clock.now,
    });
  let controller: Controller;
  try {
    controller = await start();
  } catch (err) {
    await cluster.stop();
    throw err;
  }
  return {
    cluster,
    get controller() {
      return controller;
    },
    stop: async () => {
      try {
        await controller.close();
      } finally {
        await cluster.stop();
      }
    },
    restart: async () => {
      await controller.close();
      controller = await start();
    },
  };
}

/** A test controller for one test file, started before its tests and stopped after them. */
export interface ControllerFixture {
  readonly controller: Controller;
  /** Closes the controller and starts another on the same control database. */
  restart(): Promise<void>;
  /** Injects a request (no socket) with `token` as bearer; the body parsed, undefined when empty. */
  call(
    method: "GET" | "POST" | "DELETE",
    url: string,
    token: string,
    payload?: unknown,
    // biome-ignore lint/suspicious/noExplicitAny: tests read whatever JSON the route answers
  ): Promise<{ status: number; body: any }>;
}

/** Registers `before`/`after` hooks that start and stop a test controller (see startTestController). */
export function useTestController(options: Parameters<typeof startTestController>[0]): ControllerFixture {
  let fixture: Awaited<ReturnType<typeof startTestController>> | undefined;
  before(async () => {
    fixture = await startTestController(options);
  });
  after(async () => await fixture?.stop());
  const controller = (): Controller => {
    if (!fixture) throw new Error("the test controller did not start");
    return fixture.controller;
  };
  return {
    get controller() {
      return controller();
    },
    async restart() {
      if (!fixture) throw new Error("the test controller did not start");
      await fixture.restart();
    },
    async call(method, url, token, payload) {
      const res = await controller().app.inject({
        method,
        url,
        headers: { authorization: `Bearer ${token}` },
        ...(payload === undefined ? {} : { payload: payload as object }),
      });
      return { status: res.statusCode, body: res.body === "" ? undefined : res.json() };
    },
  };
}

/**
 * Waits (in real time, asserting nothing about it) for a failover reconciler pass that began at or
 * after the clock's now, so that what a test sent before is what the pass judged; resolves with
 * `GET /v1/failover`. Fails on a reconciler error.
 */
export async function reconciled(
  api: ControllerFixture,
  clock: ManualClock,
  // biome-ignore lint/suspicious/noExplicitAny: tests read whatever JSON the route answers
): Promise<any> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const body = (await api.call("GET", "/v1/failover", TEST_TOKENS.reader)).body;
    if (body.reconcilerError !== undefined) {
      throw new Error(`reconciler error: ${JSON.stringify(body.reconcilerError)}`);
    }
    if (body.reconciledAtMs !== undefined && body.reconciledAtMs >= clock.nowMs) return body;
    if (Date.now() > deadline) throw new Error(`no reconciler pass since ${clock.nowMs}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
