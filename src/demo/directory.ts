/**
 * The demo directory service: users, sign-in tokens and token verification for many tenants, run
 * by ringfence in every region of a cell. Reads go to the local replica, writes to the cell's
 * writer endpoint, and a write is acknowledged only after its commit (which, with ringfence's
 * `synchronous_standby_names`, includes an out-of-region flush) returned.
 *
 * Run it as a program (`node dist/demo/directory.js`, configured by environment variables, see
 * directory-config.ts) or in-process with `startDirectory(config)`.
 */
import { realpathSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { fileURLToPath } from "node:url";
import { ConfigError, type DirectoryConfig, directoryConfigFromEnv } from "./directory-config.js";
import {
  bearerOf,
  checkId,
  HttpError,
  minLsnOf,
  readJsonBody,
  sendJson,
  tenantOf,
} from "./directory-http.js";
import { type LogEvent, SchemaMigrator } from "./directory-schema.js";
import { createPool, DirectoryStore } from "./directory-store.js";
import { issueToken, verifyToken } from "./token.js";

export { ConfigError, type DirectoryConfig, directoryConfigFromEnv } from "./directory-config.js";

export interface DirectoryOptions {
  /** Where start/stop events go; one JSON line each on stdout by default. */
  readonly log?: (event: LogEvent) => void;
  /** How long `close()` lets in-flight requests finish before cutting them off; 5 s by default. */
  readonly drainMs?: number;
  /** How long the start waits for the first migration attempt before listening anyway; 3 s by default. */
  readonly migrationWaitMs?: number;
}

/** A running directory service. */
export interface DirectoryHandle {
  /** Base URL, e.g. `http://127.0.0.1:41234`. */
  readonly url: string;
  /** True once the schema is applied on the cell primary (until then writes answer 503). */
  readonly schemaApplied: boolean;
  /**
   * Stops accepting connections, lets in-flight requests finish (up to `drainMs`), then closes the
   * pools. Idempotent: later calls return the same promise.
   */
  close(reason?: string): Promise<void>;
}

interface Context {
  readonly config: DirectoryConfig;
  readonly store: DirectoryStore;
  readonly migrator: SchemaMigrator;
}

type Handler = (ctx: Context, req: IncomingMessage, res: ServerResponse, param: string) => Promise<void>;

const USER_BODY = 'the body must be a JSON object like {"name": "Ada", "email": "ada@example.com"}';
const NAME_RULE = "name must be a string of 1 to 200 characters";

/** A JSON object's own fields, or an INVALID_BODY naming what the body should be. */
function objectBody(body: unknown, like: string): Record<string, unknown> {
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw new HttpError("INVALID_BODY", like);
  }
  return body as Record<string, unknown>;
}

function invalidField(field: string, message: string): HttpError {
  return new HttpError("INVALID_BODY", message, { field });
}

/** `{name, email}` of a PUT /users/:id, each checked with a message that names it. */
function userBody(body: unknown): { name: string; email: string } {
  const { name, email } = objectBody(body, USER_BODY);
  if (typeof name !== "string" || name.length < 1 || name.length > 200) throw invalidField("name", NAME_RULE);
  if (typeof email !== "string") {
    throw invalidField("email", "email must be a string with an @, at most 320 characters");
  }
  if (email.length > 320) throw invalidField("email", "email must be at most 320 characters");
  if (!email.includes("@")) throw invalidField("email", "email must contain an @");
  return { name, email };
}

function writesUnavailable(): HttpError {
  return new HttpError(
    "WRITES_UNAVAILABLE",
    "writes are unavailable until the schema is applied on the cell primary (DATABASE_WRITE_URL), which has not been reachable; retry",
  );
}

const putUser: Handler = async ({ store, migrator }, req, res, param) => {
  const tenant = tenantOf(req);
  const id = checkId(param, "id");
  const { name, email } = userBody(await readJsonBody(req));
  if (!migrator.applied && !(await migrator.ensure())) throw writesUnavailable();
  const { user, lsn } = await store.upsertUser(tenant, id, name, email);
  sendJson(res, 200, { user, lsn }, { "X-Ringfence-Commit-LSN": lsn });
};

const getUser: Handler = async ({ store }, req, res, param) => {
  const tenant = tenantOf(req);
  const id = checkId(param, "id");
  const { user, servedFrom } = await store.findUser(tenant, id, minLsnOf(req));
  const headers = { "X-Ringfence-Served-From": servedFrom };
  if (!user) {
    throw new HttpError("USER_NOT_FOUND", `tenant ${tenant} has no user ${id}`, { headers });
  }
  sendJson(res, 200, { user }, headers);
};

const signIn: Handler = async ({ config, store, migrator }, req, res) => {
  const tenant = tenantOf(req);
  const minLsn = minLsnOf(req);
  const signIn = objectBody(await readJsonBody(req), 'the body must be a JSON object like {"userId": "ada"}');
  const userId = checkId(signIn.userId, "userId");
  if (!migrator.applied && !(await migrator.ensure())) throw writesUnavailable();
  const { user } = await store.findUser(tenant, userId, minLsn);
  if (!user) throw new HttpError("USER_NOT_FOUND", `tenant ${tenant} has no user ${userId}`);
  const issued = issueToken(config.tokenSecret, { tenant, userId });
  await store.recordSignIn(tenant, userId, issued.jti);
  sendJson(res, 201, { token: issued.token, expiresAt: issued.expiresAt });
};

const verify: Handler = async ({ config }, req, res) => {
  const tenant = tenantOf(req);
  const result = verifyToken(config.tokenSecret, bearerOf(req));
  if (!result.ok) {
    throw new HttpError("TOKEN_INVALID", `the token is not valid (${result.reason}); sign in again`, {
      headers: { "WWW-Authenticate": `Bearer realm="ringfence-demo", error="invalid_token"` },
    });
  }
  if (result.tenant !== tenant) {
    throw new HttpError("TENANT_MISMATCH", `the token was issued for another tenant than ${tenant}`);
  }
  sendJson(res, 200, { valid: true, tenant, userId: result.userId, expiresAt: result.expiresAt });
};

/**
 * How long /healthz reports its last look at the primary before looking again. The agent asks for
 * health every second; asking the primary as often kept one connection per instance open on it
 * (2.5 MiB each) for that alone. The primary's health is the controller's business; this field
 * only informs, and the status code depends on the local replica alone.
 */
const PRIMARY_LOOK_MS = 30_000;

const healthz: Handler = async ({ config, store }, _req, res) => {
  const [replica, primary] = await Promise.all([
    store.replicaHealthy(),
    store.primaryHealthy(1_000, PRIMARY_LOOK_MS),
  ]);
  sendJson(res, replica ? 200 : 503, {
    status: replica ? "ok" : "unavailable",
    region: config.region,
    zone: config.zone,
    cell: config.cell,
    version: config.version,
    replica: replica ? "ok" : "unreachable",
    primary: primary ? "ok" : "unreachable",
  });
};

const ROUTES: readonly { path: RegExp; methods: Readonly<Record<string, Handler>> }[] = [
  { path: /^\/healthz$/, methods: { GET: healthz } },
  { path: /^\/users\/([^/]*)$/, methods: { GET: getUser, PUT: putUser } },
  { path: /^\/tokens$/, methods: { POST: signIn } },
  { path: /^\/tokens\/verify$/, methods: { GET: verify } },
];

async function route(ctx: Context, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const path = (req.url ?? "/").split("?", 1)[0] ?? "/";
  for (const r of ROUTES) {
    const match = r.path.exec(path);
    if (!match) continue;
    const handler = r.methods[req.method ?? ""];
    if (!handler) {
      const allow = Object.keys(r.methods).join(", ");
      throw new HttpError("METHOD_NOT_ALLOWED", `${req.method} is not allowed on ${path}; use ${allow}`, {
        headers: { Allow: allow },
      });
    }
    let param = "";
    try {
      param = decodeURIComponent(match[1] ?? "");
    } catch {
      throw new HttpError("INVALID_ID", "id is not a valid percent-encoded path segment", { field: "id" });
    }
    await handler(ctx, req, res, param);
    return;
  }
  throw new HttpError(
    "NOT_FOUND",
    `no route ${req.method} ${path}; routes: GET /healthz, GET|PUT /users/:id, POST /tokens, GET /tokens/verify`,
  );
}

function stdoutLog(event: LogEvent): void {
  process.stdout.write(
    `${JSON.stringify({ time: new Date().toISOString(), service: "directory", ...event })}\n`,
  );
}

async function withTimeout<T>(work: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      work,
      new Promise<undefined>((r) => {
        timer = setTimeout(() => r(undefined), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

async function listen(server: Server, port: number, host: string): Promise<number> {
  return await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      const address = server.address();
      resolve(typeof address === "object" && address ? address.port : port);
    });
  });
}

/**
 * Starts the directory service: opens the pools, applies the schema through the writer endpoint
 * (in the background when the primary is unreachable), and listens on `config.host:config.port`.
 */
export async function startDirectory(
  config: DirectoryConfig,
  options: DirectoryOptions = {},
): Promise<DirectoryHandle> {
  const log = options.log ?? stdoutLog;
  const drainMs = options.drainMs ?? 5_000;
  const read = createPool(config.databaseUrl, "ringfence-directory");
  const write = createPool(config.databaseWriteUrl, "ringfence-directory");
  const migrator = new SchemaMigrator(write, log, undefined, read);
  const ctx: Context = { config, store: new DirectoryStore(read, write), migrator };

  let draining = false;
  const inFlight = new Set<ServerResponse>();
  let drained: (() => void) | undefined;
  const server = createServer((req, res) => {
    inFlight.add(res);
    res.once("close", () => {
      inFlight.delete(res);
      if (inFlight.size === 0) drained?.();
    });
    if (draining) res.setHeader("Connection", "close");
    route(ctx, req, res).catch((err: unknown) => {
      const e = err instanceof HttpError ? err : new HttpError("INTERNAL", "internal error", { cause: err });
      sendJson(res, e.status, e.body(), e.headers);
    });
  });

  let port: number;
  try {
    await migrator.start(options.migrationWaitMs ?? 3_000);
    port = await listen(server, config.port, config.host);
  } catch (err) {
    migrator.stop();
    await withTimeout(Promise.allSettled([read.end(), write.end()]), 2_000);
    throw err;
  }
  const url = `http://${config.host.includes(":") ? `[${config.host}]` : config.host}:${port}`;
  log({
    event: "directory.started",
    url,
    region: config.region,
    zone: config.zone,
    cell: config.cell,
    version: config.version,
    pid: process.pid,
  });

  let closing: Promise<void> | undefined;
  const close = (reason = "close") => {
    closing ??= (async () => {
      log({ event: "directory.stopping", reason, inFlight: inFlight.size });
      draining = true;
      // Answers still to come close their connection, so keep-alive clients reconnect elsewhere.
      for (const res of inFlight) if (!res.headersSent) res.setHeader("Connection", "close");
      migrator.stop();
      const serverClosed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      if (inFlight.size > 0) {
        await withTimeout(new Promise<void>((resolve) => (drained = resolve)), drainMs);
      }
      const cut = inFlight.size;
      server.closeAllConnections();
      await serverClosed;
      // A query stuck on an unresponsive server keeps its connection; do not wait for it forever.
      await withTimeout(Promise.allSettled([read.end(), write.end()]), 2_000);
      log({ event: "directory.stopped", reason, cutOff: cut });
    })();
    return closing;
  };
  return {
    url,
    get schemaApplied() {
      return migrator.applied;
    },
    close,
  };
}

/** Runs the program from the environment until SIGTERM/SIGINT (`ringfence demo directory`). */
export async function main(): Promise<void> {
  let config: DirectoryConfig;
  try {
    config = directoryConfigFromEnv(process.env);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`ringfence demo directory: ${err.message}\n`);
    process.exit(2);
  }
  const handle = await startDirectory(config);
  const stop = (signal: NodeJS.Signals) => {
    handle.close(signal).then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once("SIGTERM", stop);
  process.once("SIGINT", stop);
}

function invokedDirectly(): boolean {
  const script = process.argv[1];
  if (!script) return false;
  try {
    return realpathSync(script) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (invokedDirectly()) {
  main().catch((err: unknown) => {
    process.stderr.write(`ringfence demo directory: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
