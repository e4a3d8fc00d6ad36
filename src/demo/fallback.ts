/**
 * The directory's fault-decorrelated fallback: verifies sign-in tokens and reads users from the
 * local replica alone, so it keeps answering when the directory service, its writer endpoint or
 * the cell primary fail. The router sends eligible requests here when the cell has no healthy
 * instance. It refuses every write.
 *
 * Decorrelation is the point: it shares only the token format (token.ts) and the environment
 * reader (env-vars.ts) with the directory service, has its own configuration, HTTP handling and queries, and never opens a connection to
 * the primary (DATABASE_WRITE_URL is ignored even when set).
 *
 * Run it as a program (`node dist/demo/fallback.js`) or in-process with `startFallback(config)`.
 */
import { realpathSync } from "node:fs";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { EnvVarError, isPostgresUrl, PORT_RULE, readVar, SECRET_PATTERN, type VarRule } from "./env-vars.js";
import { verifyToken } from "./token.js";

export interface FallbackConfig {
  /** TCP port to listen on; 0 picks a free one. */
  readonly port: number;
  /** Address to listen on; 127.0.0.1 by default. */
  readonly host: string;
  readonly region: string;
  readonly zone: string;
  readonly cell: string;
  /** Reported by /healthz; "dev" by default. */
  readonly version: string;
  /** The local replica, the only database the fallback uses. */
  readonly databaseUrl: string;
  /** HMAC key of sign-in tokens, the same as the directory service's. */
  readonly tokenSecret: Buffer;
}

export interface FallbackHandle {
  readonly url: string;
  /** Stops accepting, lets in-flight requests finish (up to 5 s), closes the pool. Idempotent. */
  close(reason?: string): Promise<void>;
}

/** A configuration problem, naming the environment variable. */
export class FallbackConfigError extends EnvVarError {
  constructor(variable: string, message: string) {
    super(variable, message);
    this.name = "FallbackConfigError";
  }
}

const nameRule = /^[A-Za-z0-9._-]{1,128}$/;
const RULES = {
  PORT: PORT_RULE,
  HOST: {
    what: "an address to listen on",
    pattern: /^.+$/,
    invalid: "must be an address to listen on",
    default: "127.0.0.1",
  },
  RINGFENCE_REGION: { what: "the region", pattern: nameRule, invalid: "must be a region name" },
  RINGFENCE_ZONE: {
    what: "the zone",
    pattern: /^[A-Za-z0-9._/-]{1,128}$/,
    invalid: "must be a zone id such as us-east/a",
  },
  RINGFENCE_CELL: { what: "the cell", pattern: nameRule, invalid: "must be a cell name" },
  RINGFENCE_VERSION: {
    what: "the version",
    pattern: /^[A-Za-z0-9._+-]{1,128}$/,
    invalid: "must be a version",
    default: "dev",
  },
  DATABASE_URL: {
    what: "a postgres:// URL of the local replica",
    check: isPostgresUrl,
    invalid: "must be a postgres:// URL of the local replica, e.g. postgres://user@127.0.0.1:5432/db",
  },
  RINGFENCE_TOKEN_SECRET: {
    what: "the token signing key, at least 32 bytes as hex",
    pattern: SECRET_PATTERN,
    invalid: "must be at least 32 bytes written as hex (64+ hex digits)",
  },
} satisfies Record<string, VarRule>;

/** Reads the fallback's configuration from `env`; throws FallbackConfigError naming the variable. */
export function fallbackConfigFromEnv(env: NodeJS.ProcessEnv = process.env): FallbackConfig {
  const get = (variable: keyof typeof RULES) =>
    readVar(env, variable, RULES[variable], (v, m) => new FallbackConfigError(v, m));
  return Object.freeze({
    port: Number(get("PORT")),
    host: get("HOST"),
    region: get("RINGFENCE_REGION"),
    zone: get("RINGFENCE_ZONE"),
    cell: get("RINGFENCE_CELL"),
    version: get("RINGFENCE_VERSION"),
    databaseUrl: get("DATABASE_URL"),
    tokenSecret: Buffer.from(get("RINGFENCE_TOKEN_SECRET"), "hex"),
  });
}

/** An answer other than 200: status, stable code, message, extra headers. */
class Refusal extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

const WRITE_METHODS = new Set(["POST", "PUT", "PATCH", "DELETE"]);
const IDENT = /^[A-Za-z0-9._-]{1,128}$/;

function reply(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  if (res.headersSent) return;
  const text = JSON.stringify(body);
  res.writeHead(status, {
    ...headers,
    "X-Ringfence-Fallback": "1",
    "Content-Type": "application/json; charset=utf-8",
    "Content-Length": Buffer.byteLength(text),
    "Cache-Control": "no-store",
  });
  res.end(text);
}

function tenantOf(req: IncomingMessage): string {
  const tenant = req.headers["x-tenant"];
  if (typeof tenant !== "string" || !IDENT.test(tenant)) {
    throw new Refusal(
      400,
      "INVALID_TENANT",
      "the X-Tenant header must be 1 to 128 characters of letters, digits, '.', '_' or '-'",
    );
  }
  return tenant;
}

async function selectOneWithin(pool: pg.Pool, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const query = pool.query("SELECT 1").then(
    () => true,
    () => false,
  );
  const late = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([query, late]);
  } finally {
    clearTimeout(timer);
  }
}

async function handle(config: FallbackConfig, pool: pg.Pool, req: IncomingMessage, res: ServerResponse) {
  const method = req.method ?? "";
  const path = (req.url ?? "/").split("?", 1)[0] ?? "/";
  if (WRITE_METHODS.has(method)) {
    throw new Refusal(
      405,
      "READ_ONLY_FALLBACK",
      `the fallback is read-only: ${method} is refused; retry later`,
      {
        Allow: "GET",
      },
    );
  }
  const user = /^\/users\/([^/]*)$/.exec(path);
  const known = path === "/healthz" || path === "/tokens/verify" || user !== null;
  if (!known) throw new Refusal(404, "NOT_FOUND", `no route ${method} ${path} on the fallback`);
  if (method !== "GET") throw new Refusal(405, "METHOD_NOT_ALLOWED", `use GET on ${path}`, { Allow: "GET" });

  if (path === "/healthz") {
    const replica = await selectOneWithin(pool, 1_000);
    const { region, zone, cell, version } = config;
    reply(res, replica ? 200 : 503, {
      status: replica ? "ok" : "unavailable",
      region,
      zone,
      cell,
      version,
      replica: replica ? "ok" : "unreachable",
      fallback: true,
    });
    return;
  }
  const tenant = tenantOf(req);
  if (path === "/tokens/verify") {
    const bearer = /^Bearer +(\S+) *$/i.exec(req.headers.authorization ?? "")?.[1];
    if (!bearer) {
      throw new Refusal(401, "UNAUTHENTICATED", "send the token as `Authorization: Bearer <token>`", {
        "WWW-Authenticate": 'Bearer realm="ringfence-demo"',
      });
    }
    const result = verifyToken(config.tokenSecret, bearer);
    if (!result.ok) throw new Refusal(401, "TOKEN_INVALID", `the token is not valid (${result.reason})`);
    if (result.tenant !== tenant) {
      throw new Refusal(403, "TENANT_MISMATCH", `the token was issued for another tenant than ${tenant}`);
    }
    reply(res, 200, { valid: true, tenant, userId: result.userId, expiresAt: result.expiresAt });
    return;
  }
  let id = "";
  try {
    id = decodeURIComponent(user?.[1] ?? "");
  } catch {
    // an undecodable id fails the check below
  }
  if (!IDENT.test(id)) {
    throw new Refusal(
      400,
      "INVALID_ID",
      "id must be 1 to 128 characters of letters, digits, '.', '_' or '-'",
    );
  }
  let rows: { tenant: string; id: string; name: string; email: string; created_at: Date; updated_at: Date }[];
  try {
    ({ rows } = await pool.query(
      "SELECT tenant, id, name, email, created_at, updated_at FROM users WHERE tenant = $1 AND id = $2",
      [tenant, id],
    ));
  } catch (err) {
    throw new Refusal(
      503,
      "STORE_UNAVAILABLE",
      `the local replica did not answer: ${(err as Error).message}`,
      {
        "Retry-After": "1",
      },
    );
  }
  const served = { "X-Ringfence-Served-From": "replica" };
  const row = rows[0];
  if (!row)
    throw new Refusal(404, "USER_NOT_FOUND", `tenant ${tenant} has no user ${id} on this replica`, served);
  const found = {
    tenant: row.tenant,
    id: row.id,
    name: row.name,
    email: row.email,
    createdAt: row.created_at.toISOString(),
    updatedAt: row.updated_at.toISOString(),
  };
  reply(res, 200, { user: found }, served);
}

/** Starts the fallback on `config.host:config.port` with a pool to the local replica only. */
export async function startFallback(
  config: FallbackConfig,
  options: { log?: (event: Record<string, unknown>) => void; drainMs?: number } = {},
): Promise<FallbackHandle> {
  const log =
    options.log ??
    ((event: Record<string, unknown>) =>
      process.stdout.write(
        `${JSON.stringify({ time: new Date().toISOString(), service: "fallback", ...event })}\n`,
      ));
  const pool = new pg.Pool({
    connectionString: config.databaseUrl,
    max: 5,
    connectionTimeoutMillis: 2_000,
    application_name: "ringfence-fallback",
  });
  pool.on("error", () => {}); // a lost idle connection is replaced on the next query
  const inFlight = new Set<ServerResponse>();
  let draining = false;
  let drained: (() => void) | undefined;
  const server = createServer((req, res) => {
    inFlight.add(res);
    res.once("close", () => {
      inFlight.delete(res);
      if (inFlight.size === 0) drained?.();
    });
    if (draining) res.setHeader("Connection", "close");
    handle(config, pool, req, res).catch((err: unknown) => {
      const r = err instanceof Refusal ? err : new Refusal(500, "INTERNAL", "internal error");
      reply(res, r.status, { error: { code: r.code, message: r.message } }, r.headers);
    });
  });
  const port = await new Promise<number>((resolve, reject) => {
    server.once("error", reject);
    server.listen(config.port, config.host, () => {
      server.off("error", reject);
      const address = server.address();
      resolve(typeof address === "object" && address ? address.port : config.port);
    });
  }).catch(async (err: unknown) => {
    await pool.end().catch(() => {});
    throw err;
  });
  const url = `http://${config.host.includes(":") ? `[${config.host}]` : config.host}:${port}`;
  const { region, zone, cell, version } = config;
  log({ event: "fallback.started", url, region, zone, cell, version, pid: process.pid });

  const within = async (work: Promise<unknown>, ms: number) => {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([work, new Promise((r) => (timer = setTimeout(r, ms)))]);
    clearTimeout(timer);
  };
  let closing: Promise<void> | undefined;
  const close = (reason = "close") => {
    closing ??= (async () => {
      log({ event: "fallback.stopping", reason, inFlight: inFlight.size });
      draining = true;
      for (const res of inFlight) if (!res.headersSent) res.setHeader("Connection", "close");
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      if (inFlight.size > 0) await within(new Promise<void>((r) => (drained = r)), options.drainMs ?? 5_000);
      server.closeAllConnections();
      await closed;
      await within(
        pool.end().catch(() => {}),
        2_000,
      );
      log({ event: "fallback.stopped", reason });
    })();
    return closing;
  };
  return { url, close };
}

/** Runs the program from the environment until SIGTERM/SIGINT (`ringfence demo directory-fallback`). */
export async function main(): Promise<void> {
  let config: FallbackConfig;
  try {
    config = fallbackConfigFromEnv(process.env);
  } catch (err) {
    if (!(err instanceof FallbackConfigError)) throw err;
    process.stderr.write(`ringfence demo fallback: ${err.message}\n`);
    process.exit(2);
  }
  const handle = await startFallback(config);
  const stop = (signal: NodeJS.Signals) => {
    handle.close(signal).then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once("SIGTERM", stop);
  process.once("SIGINT", stop);
}

const script = process.argv[1];
let direct = false;
try {
  direct = script !== undefined && realpathSync(script) === realpathSync(fileURLToPath(import.meta.url));
} catch {
  direct = false;
}
if (direct) {
  main().catch((err: unknown) => {
    process.stderr.write(`ringfence demo fallback: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
