/**
 * The controller's HTTP API: fastify with JSON schemas, bearer-token roles and state in the
 * control database. `startController` connects to the database, applies migrations, initialises the
 * world on first start, and listens.
 *
 * Request path: onRequest (role check: 401/403) → body parsing (1 MiB, JSON only) → schema
 * validation (400 naming the field) → handler (404 for unknown cells, zones, regions, processes;
 * 503 when the control database is away) → response schema. Every error is
 * `{ error: { code, message, retryable, problems } }`.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import Fastify, { type FastifyInstance } from "fastify";
import { RingfenceError } from "../lib/errors.js";
import { PACKAGE_ROOT } from "../topology/load.js";
import type { Topology } from "../topology/model.js";
import type { Layout } from "../world/layout.js";
import { type Tokens, validateTokens } from "./auth.js";
import type { ControllerContext } from "./context.js";
import { EventFeed } from "./events.js";
import { installErrorHandlers } from "./http-errors.js";
import { registerAgentRoutes } from "./routes/agents.js";
import { registerEventRoutes } from "./routes/events.js";
import { registerOperatorRoutes } from "./routes/operator.js";
import { registerReadRoutes } from "./routes/read.js";
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
  /** An agent or router not heard from for longer than this is unreachable; 3000 ms by default. */
  readonly heartbeatTimeoutMs?: number;
  /** Log requests with fastify's logger (pino, to stdout); off by default. */
  readonly logger?: boolean;
  /** Interval of keep-alive comments on event streams; 15000 ms by default. */
  readonly keepAliveMs?: number;
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
  // Open event streams would keep the server from closing.
  app.addHook("preClose", async () => ctx.feed.closeAll());
  return app;
}

/**
 * Starts a controller: connects to the control database (failing with
 * `RINGFENCE_CONTROL_DB_UNAVAILABLE` when it cannot), migrates, initialises or resumes the world's
 * state, and listens.
 */
export async function startController(options: ControllerOptions): Promise<Controller> {
  validateTokens(options.tokens);
  const heartbeatTimeoutMs = options.heartbeatTimeoutMs ?? 3_000;
  if (!Number.isFinite(heartbeatTimeoutMs) || heartbeatTimeoutMs <= 0) {
    throw new RingfenceError(
      "RINGFENCE_USAGE",
      `heartbeatTimeoutMs must be a positive number, got ${heartbeatTimeoutMs}`,
    );
  }
  const clock = options.clock ?? Date.now;
  const feed = new EventFeed();
  let app: FastifyInstance | undefined;
  const store = await Store.open({
    ...options.database,
    clock,
    onAppend: () => feed.notify(),
    onIdleError: (err) => app?.log.warn({ err }, "control database connection lost"),
  });
  try {
    await store.initialise(options.topology);
    const ctx: ControllerContext = {
      index: new WorldIndex(options.topology, options.layout),
      store,
      feed,
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
    built.addHook("onClose", async () => store.close());
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
