/**
 * The controller's HTTP API: fastify with JSON schemas, bearer-token roles and state in the
 * control database. `startController` connects to the database, applies migrations, initialises the
 * world on first start, and listens.
 *
 * Request path: onRequest (role check: 401/403) → body parsing (1 MiB, 16 MiB for telemetry; JSON
 * only) → schema validation (400 naming the field) → handler (404 for unknown cells, zones, regions,
 * processes, drain targets and drains; 409 for a target already drained; 503 when the control
 * database is away or too many streams are open) → response schema. Every error is
 * `{ error: { code, message, retryable, problems } }`.
 *
 * Live streams: `GET /v1/events/stream` (the event log) and `GET /v1/routing/stream` (the routing
 * table, see `routing-feed.ts`). Closing the controller ends both.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import Fastify, { type FastifyInstance } from "fastify";
import { RingfenceError } from "../lib/errors.js";
import { PACKAGE_ROOT } from "../lib/package-root.js";
import type { Topology } from "../topology/model.js";
import type { Layout } from "../world/layout.js";
import { type Tokens, validateTokens } from "./auth.js";
import type { ControllerContext } from "./context.js";
import { DesiredWaiters } from "./desired-waiters.js";
import { EventFeed } from "./events.js";
import { Evidence } from "./evidence.js";
import { FailoverCoordinator } from "./failover.js";
import type { FailoverOptions } from "./failover-record.js";
import { installErrorHandlers } from "./http-errors.js";
import { registerAgentRoutes } from "./routes/agents.js";
import { registerDrainRoutes } from "./routes/drains.js";
import { registerEventRoutes } from "./routes/events.js";
import { registerFailoverRoutes } from "./routes/failover.js";
import { registerOperatorRoutes } from "./routes/operator.js";
import { registerReadRoutes } from "./routes/read.js";
import { registerRoutingRoutes } from "./routes/routing.js";
import { registerTelemetryRoutes } from "./routes/telemetry.js";
import { MAX_ROUTING_STREAMS, ROUTING_CHECK_MS, RoutingFeed } from "./routing-feed.js";
import { Store } from "./store.js";
import { WorldIndex } from "./world-index.js";

export interface ControllerOptions {
  readonly topology: Topology;
  readonly layout: Layout;
  /** One bearer token per role; they must differ. */
  readonly tokens: Tokens;
  /** The control database (user `ringfence`, trust auth); database `postgres` by default. */
  readonly database: { readonly host: string; readonly port: number; readonly database?: string };
  /** Where to listen; `layout.controller` by default. Port 0 picks a free port. */
  readonly host?: string;
  readonly port?: number;
  /** Milliseconds since the epoch; `Date.now` by default. Injectable for tests. */
  readonly clock?: () => number;
  /**
   * An agent or router not heard from for longer than this is unreachable. By default the freshness
   * `failover.detection` compiles to (`topology.failover.detection.freshMs`, 3000 ms for the default
   * 3 s): a heartbeat is a report like an observer's probe, and a zone that falls silent is declared
   * within the same detection as a primary.
   */
  readonly heartbeatTimeoutMs?: number;
  /** Log requests with fastify's logger (pino, to stdout); off by default. */
  readonly logger?: boolean;
  /** Interval of keep-alive comments on event and routing streams; 15000 ms by default. */
  readonly keepAliveMs?: number;
  /**
   * Interval of the routing streams' check for changes nothing announced (agents falling silent);
   * 500 ms by default.
   */
  readonly routingCheckMs?: number;
  /** Most routing streams open at once; more are refused with 503. 1000 by default. */
  readonly maxRoutingStreams?: number;
  /**
   * The reconciler's own timing (tick, switchover timeout). Detection, the position wait, failback and
   * durability come from the compiled topology (`topology.failover`), never from here.
   */
  readonly failover?: FailoverOptions;
}

export interface Controller {
  /** `http://host:port` the controller listens on. */
  readonly url: string;
  readonly app: FastifyInstance;
  /** Ends event streams, stops listening and closes the database pool. */
  close(): Promise<void>;
}

/** Largest request body accepted (heartbeats with events are the largest). */
export const BODY_LIMIT = 1024 * 1024;

function packageVersion(): string {
  try {
    return (JSON.parse(readFileSync(join(PACKAGE_ROOT, "package.json"), "utf8")) as { version: string })
      .version;
  } catch {
    return "unknown";
  }
}

function positive(name: string, value: number): number {
  if (!Number.isFinite(value) || value <= 0) {
    throw new RingfenceError("RINGFENCE_USAGE", `${name} must be a positive number, got ${value}`);
  }
  return value;
}

/** Builds the fastify app on an open store, without listening (tests use `app.inject`). */
export function buildApp(ctx: ControllerContext, options: { logger?: boolean; keepAliveMs?: number } = {}) {
  const app = Fastify({
    logger: options.logger ?? false,
    bodyLimit: BODY_LIMIT,
    // Bodies are checked as sent: no coercion of "123" to 123, no silent removal of unknown fields.
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, allErrors: false } },
  });
  installErrorHandlers(app);
  registerReadRoutes(app, ctx);
  registerAgentRoutes(app, ctx);
  registerEventRoutes(app, ctx, options.keepAliveMs);
  registerOperatorRoutes(app, ctx);
  registerDrainRoutes(app, ctx);
  registerRoutingRoutes(app, ctx, options.keepAliveMs);
  registerTelemetryRoutes(app, ctx);
  registerFailoverRoutes(app, ctx);
  // Open streams would keep the server from closing.
  app.addHook("preClose", async () => {
    ctx.feed.closeAll();
    ctx.routing.close();
    ctx.desired.close();
  });
  return app;
}

/**
 * Starts a controller: connects to the control database (failing with
 * `RINGFENCE_CONTROL_DB_UNAVAILABLE` when it cannot), migrates, initialises or resumes the world's
 * state, and listens.
 */
export async function startController(options: ControllerOptions): Promise<Controller> {
  validateTokens(options.tokens);
  const heartbeatTimeoutMs = positive(
    "heartbeatTimeoutMs",
    options.heartbeatTimeoutMs ?? options.topology.failover.detection.freshMs,
  );
  if (options.keepAliveMs !== undefined) positive("keepAliveMs", options.keepAliveMs);
  const routingCheckMs = positive("routingCheckMs", options.routingCheckMs ?? ROUTING_CHECK_MS);
  const maxRoutingStreams = positive("maxRoutingStreams", options.maxRoutingStreams ?? MAX_ROUTING_STREAMS);
  const clock = options.clock ?? Date.now;
  const feed = new EventFeed();
  const desired = new DesiredWaiters();
  let app: FastifyInstance | undefined;
  let routing: RoutingFeed | undefined;
  const store = await Store.open({
    ...options.database,
    clock,
    onAppend: () => feed.notify(),
    onDesiredChange: () => {
      routing?.notify();
      desired.notify();
    },
    onIdleError: (err) => app?.log.warn({ err }, "control database connection lost"),
  });
  try {
    await store.initialise(options.topology);
    const index = new WorldIndex(options.topology, options.layout);
    routing = new RoutingFeed({
      index,
      store,
      clock,
      heartbeatTimeoutMs,
      checkMs: routingCheckMs,
      maxStreams: maxRoutingStreams,
    });
    const evidence = new Evidence(index, clock());
    const failover = new FailoverCoordinator(
      { index, cells: store.cells, evidence, clock },
      options.failover,
    );
    const ctx: ControllerContext = {
      index,
      evidence,
      failover,
      store,
      feed,
      routing,
      desired,
      tokens: options.tokens,
      clock,
      heartbeatTimeoutMs,
      version: packageVersion(),
    };
    const built = buildApp(ctx, {
      ...(options.logger === undefined ? {} : { logger: options.logger }),
      ...(options.keepAliveMs === undefined ? {} : { keepAliveMs: options.keepAliveMs }),
    });
    app = built;
    built.addHook("onClose", async () => {
      await failover.stop();
      await store.close();
    });
    failover.start();
    const host = options.host ?? options.layout.controller.host;
    const port = options.port ?? options.layout.controller.port;
    try {
      await built.listen({ host, port });
    } catch (err) {
      await built.close();
      throw err;
    }
    const address = built.server.address();
    const bound = typeof address === "object" && address ? address.port : port;
    const url = `http://${host.includes(":") ? `[${host}]` : host}:${bound}`;
    return { url, app: built, close: async () => await built.close() };
  } catch (err) {
    if (app === undefined) await store.close().catch(() => {});
    throw err;
  }
}
