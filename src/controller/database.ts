/**
 * The connection to the control database: a `pg.Pool` that survives the database going away.
 * Every failure that means "cannot reach the database" becomes `RINGFENCE_CONTROL_DB_UNAVAILABLE`
 * (503, retryable); broken connections are dropped rather than reused, and the pool connects again
 * by itself when the database returns, so the controller never needs a restart.
 */
import pg from "pg";
import { RingfenceError } from "../lib/errors.js";
import { PG_SUPERUSER } from "../lib/postgres.js";

export interface DatabaseOptions {
  readonly host: string;
  readonly port: number;
  /** Database name; `postgres` by default. */
  readonly database?: string;
  /** Told about a failure of an idle pooled connection (the pool drops it and reconnects later). */
  readonly onIdleError?: (err: Error) => void;
}

/** An open transaction: its client, and work to run once it has committed. */
export interface Tx {
  readonly client: pg.PoolClient;
  afterCommit(fn: () => void): void;
}

const CONNECTIVITY_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EPIPE",
  "EHOSTUNREACH",
  "ENOTFOUND",
]);

/**
 * Whether `err` means the database cannot be reached (as opposed to a bug in a query): a socket
 * error, a connection or query timeout, a connection-exception (08) or operator-intervention (57P)
 * SQLSTATE, or too many connections (53300).
 */
export function isUnavailable(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown } | null;
  const code = typeof e?.code === "string" ? e.code : "";
  const message = typeof e?.message === "string" ? e.message : "";
  return (
    CONNECTIVITY_CODES.has(code) ||
    code.startsWith("08") ||
    code.startsWith("57P") ||
    code === "53300" ||
    /Connection terminated|timeout exceeded when trying to connect|Query read timeout|connection (error|ended|closed)|Client was closed|Cannot use a pool after calling end/i.test(
      message,
    )
  );
}

export class ControlDatabase {
  readonly #pool: pg.Pool;
  readonly #where: string;

  /** Creates the pool; nothing connects until the first query. */
  constructor(options: DatabaseOptions) {
    const database = options.database ?? "postgres";
    this.#where = `${options.host}:${options.port}/${database}`;
    this.#pool = new pg.Pool({
      host: options.host,
      port: options.port,
      user: PG_SUPERUSER,
      database,
      max: 10,
      connectionTimeoutMillis: 2_000,
      idleTimeoutMillis: 10_000,
      // A stopped (SIGSTOP) or partitioned database must fail requests, not hang them.
      query_timeout: 5_000,
      keepAlive: true,
      application_name: "ringfence-controller",
    });
    // An idle client whose server went away emits here; without a listener the process would crash.
    this.#pool.on("error", (err) => options.onIdleError?.(err));
  }

  /** Runs one statement on any pooled connection. */
  async query<T extends pg.QueryResultRow>(sql: string, params: unknown[] = []): Promise<T[]> {
    try {
      return (await this.#pool.query<T>(sql, params)).rows;
    } catch (err) {
      throw this.#translate(err);
    }
  }

  /** Runs `fn` with a connection of its own, outside any transaction. */
  async withClient<T>(fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    let client: pg.PoolClient;
    try {
      client = await this.#pool.connect();
    } catch (err) {
      throw this.#translate(err);
    }
    let failure: unknown;
    // A checked-out client reports a lost connection as an 'error' event as well as by failing its
    // query; the pool listens only while the client is idle, and an unheard 'error' would crash us.
    let broken: Error | undefined;
    const onError = (err: Error) => {
      broken = err;
    };
    client.on("error", onError);
    try {
      return await fn(client);
    } catch (err) {
      failure = err;
      throw this.#translate(err);
    } finally {
      client.off("error", onError);
      // A client whose connection broke is destroyed rather than returned to the pool.
      client.release(
        broken ?? (failure !== undefined && isUnavailable(failure) ? (failure as Error) : undefined),
      );
    }
  }

  /**
   * Runs `fn` in a transaction (`read`: repeatable read, read only, for consistent snapshots) and
   * commits it; `afterCommit` callbacks run only once the commit succeeded.
   */
  async transaction<T>(fn: (tx: Tx) => Promise<T>, mode: "read" | "write" = "write"): Promise<T> {
    const committed: (() => void)[] = [];
    const value = await this.withClient(async (client) => {
      await client.query(mode === "read" ? "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY" : "BEGIN");
      try {
        const result = await fn({ client, afterCommit: (f) => committed.push(f) });
        await client.query("COMMIT");
        return result;
      } catch (err) {
        // Over a lost or hung connection a ROLLBACK would only wait; the server rolls back on disconnect.
        if (!isUnavailable(err)) await client.query("ROLLBACK").catch(() => {});
        throw err;
      }
    });
    for (const f of committed) f();
    return value;
  }

  /** Closes every connection. */
  async close(): Promise<void> {
    await this.#pool.end();
  }

  #translate(err: unknown): unknown {
    if (err instanceof RingfenceError) return err;
    if (isUnavailable(err)) {
      return new RingfenceError(
        "RINGFENCE_CONTROL_DB_UNAVAILABLE",
        `the control database at ${this.#where} is unavailable (${(err as Error).message}); retry when it is back`,
        { cause: err },
      );
    }
    return err;
  }
}
