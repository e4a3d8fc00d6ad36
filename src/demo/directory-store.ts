/**
 * The directory service's data: two pools (local replica for reads, the cell's writer endpoint for
 * writes) and the queries. Reads follow the read-your-writes rule: wait briefly for the replica to
 * replay the caller's LSN, else read from the primary; a user missing from the replica is looked
 * up on the primary before anyone is told it does not exist.
 */
import pg from "pg";
import { HttpError } from "./directory-http.js";

/** The users table as answered by the API. */
export interface User {
  readonly tenant: string;
  readonly id: string;
  readonly name: string;
  readonly email: string;
  readonly createdAt: string;
  readonly updatedAt: string;
}

export type ServedFrom = "replica" | "primary";

/** Pool settings: small, fail fast on connect, no statement timeout (the router owns timeouts). */
export function createPool(connectionString: string, applicationName: string): pg.Pool {
  const pool = new pg.Pool({
    connectionString,
    max: 5,
    connectionTimeoutMillis: 2_000,
    application_name: applicationName,
  });
  // An idle connection whose server went away must not crash the process; the next query on the
  // pool opens a new connection and reports its own error.
  pool.on("error", () => {});
  return pool;
}

/**
 * Whether the same request may succeed later: connection, resource, shutdown and serialization
 * classes, a read-only primary (the writer endpoint still points at a standby during failover),
 * and a missing table (the schema is not applied or not replayed yet).
 */
function isTransient(err: unknown): boolean {
  // Anything but an error answered by the server is a socket, pool or connect failure.
  if (!(err instanceof pg.DatabaseError)) return true;
  const code = err.code ?? "";
  return /^(08|53|57|58|40)/.test(code) || code === "25006" || code === "55000" || code === "42P01";
}

/** Maps a database error to the answer: 503 (retry) when transient, 500 otherwise. */
export function storeError(err: unknown, what: string): HttpError {
  if (err instanceof HttpError) return err;
  const message = err instanceof Error ? err.message : String(err);
  if (isTransient(err)) {
    return new HttpError("STORE_UNAVAILABLE", `${what} failed: ${message}; retry`, { cause: err });
  }
  return new HttpError("INTERNAL", `${what} failed unexpectedly`, { cause: err });
}

interface UserRow {
  tenant: string;
  id: string;
  name: string;
  email: string;
  created_at: Date;
  updated_at: Date;
}

function toUser(row: UserRow): User {
  return {
    tenant: row.tenant,
    id: row.id,
    name: row.name,
    email: row.email,
    createdAt: row.created_at.toISOString(),
    updatedAt: row.updated_at.toISOString(),
  };
}

const SELECT_USER =
  "SELECT tenant, id, name, email, created_at, updated_at FROM users WHERE tenant = $1 AND id = $2";

/**
 * Runs `work` on a client checked out of `pool`. While checked out a client has no error listener
 * of the pool's, so a connection lost mid-query would throw from the emitter; the query's own
 * rejection reports the loss instead. A client whose work failed is destroyed, not returned.
 */
export async function withClient<T>(
  pool: pg.Pool,
  work: (client: pg.PoolClient) => Promise<T>,
  options: { readonly close?: boolean } = {},
): Promise<T> {
  const client = await pool.connect();
  const ignore = () => {};
  client.on("error", ignore);
  let failed: Error | undefined;
  try {
    return await work(client);
  } catch (err) {
    failed = err instanceof Error ? err : new Error(String(err));
    throw err;
  } finally {
    client.off("error", ignore);
    // `close`: the connection ends here instead of idling in the pool.
    client.release(failed ?? options.close === true);
  }
}

/**
 * Runs `work` on one connection of the write pool and succeeds only if PostgreSQL confirmed the
 * commit. A commit whose wait for the synchronous standby was cancelled still returns success
 * with a WARNING ("committed locally, but might not have been replicated"): that is not an
 * out-of-region commit, so any WARNING during the write turns the answer into a retryable 503.
 */
async function confirmedWrite<T>(pool: pg.Pool, what: string, work: (c: pg.PoolClient) => Promise<T>) {
  try {
    return await withClient(pool, async (client) => {
      let warning: string | undefined;
      const onNotice = (notice: { severity?: string | undefined; message?: string | undefined }) => {
        if (notice.severity === "WARNING") warning ??= notice.message ?? "warning";
      };
      client.on("notice", onNotice);
      try {
        const result = await work(client);
        if (warning !== undefined) {
          throw new HttpError(
            "WRITE_NOT_CONFIRMED",
            `${what} may have committed on the primary but its replication was not confirmed (${warning}); retry`,
          );
        }
        return result;
      } finally {
        client.off("notice", onNotice);
      }
    });
  } catch (err) {
    throw storeError(err, what);
  }
}

/** The read and write sides of the directory's data. */
export class DirectoryStore {
  readonly #read: pg.Pool;
  readonly #write: pg.Pool;
  #primaryLook: { ok: boolean; atMs: number } | undefined;

  constructor(read: pg.Pool, write: pg.Pool) {
    this.#read = read;
    this.#write = write;
  }

  /**
   * Inserts or updates (tenant, id) through the writer endpoint and returns the row with an LSN
   * at or after its commit. Writing the same values again changes nothing (not even updated_at).
   */
  async upsertUser(
    tenant: string,
    id: string,
    name: string,
    email: string,
  ): Promise<{ user: User; lsn: string }> {
    return await confirmedWrite(this.#write, "writing the user", async (client) => {
      const { rows } = await client.query<UserRow>(
        `INSERT INTO users AS u (tenant, id, name, email) VALUES ($1, $2, $3, $4)
         ON CONFLICT (tenant, id) DO UPDATE SET
           name = EXCLUDED.name,
           email = EXCLUDED.email,
           updated_at = CASE WHEN (u.name, u.email) IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.email)
                             THEN now() ELSE u.updated_at END
         RETURNING tenant, id, name, email, created_at, updated_at`,
        [tenant, id, name, email],
      );
      // The statement ran in its own transaction, so the commit (and the synchronous standby's
      // flush) has happened; the flush position is the smallest LSN known to cover it.
      const lsn = await client.query<{ lsn: string }>("SELECT pg_current_wal_flush_lsn()::text AS lsn");
      const row = rows[0];
      if (!row) throw new Error("the upsert returned no row");
      return { user: toUser(row), lsn: lsn.rows[0]?.lsn ?? "0/0" };
    });
  }

  /** Records a sign-in through the writer endpoint; returns once the commit is confirmed. */
  async recordSignIn(tenant: string, userId: string, jti: string): Promise<void> {
    await confirmedWrite(this.#write, "recording the sign-in", async (client) => {
      await client.query("INSERT INTO sign_ins (tenant, user_id, jti) VALUES ($1, $2, $3)", [
        tenant,
        userId,
        jti,
      ]);
    });
  }

  /**
   * Finds a user with read-your-writes: with `minLsn`, polls the replica every 10 ms for up to
   * 1 s until it has replayed that LSN, else reads from the primary. A user the replica does not
   * have (or a replica that fails) is looked up on the primary before answering "absent".
   */
  async findUser(
    tenant: string,
    id: string,
    minLsn?: string,
  ): Promise<{ user: User | undefined; servedFrom: ServedFrom }> {
    if (minLsn === undefined || (await this.#replicaReached(minLsn))) {
      try {
        const { rows } = await this.#read.query<UserRow>(SELECT_USER, [tenant, id]);
        if (rows[0]) return { user: toUser(rows[0]), servedFrom: "replica" };
      } catch {
        // unreachable, or the schema has not replayed here yet: ask the primary
      }
    }
    try {
      const { rows } = await this.#write.query<UserRow>(SELECT_USER, [tenant, id]);
      return { user: rows[0] ? toUser(rows[0]) : undefined, servedFrom: "primary" };
    } catch (err) {
      throw storeError(err, "reading the user from the primary");
    }
  }

  async #replicaReached(minLsn: string, waitMs = 1_000, everyMs = 10): Promise<boolean> {
    const deadline = Date.now() + waitMs;
    for (;;) {
      try {
        const { rows } = await this.#read.query<{ reached: boolean | null }>(
          `SELECT CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END
                  >= $1::pg_lsn AS reached`,
          [minLsn],
        );
        if (rows[0]?.reached === true) return true;
      } catch {
        return false;
      }
      if (Date.now() + everyMs > deadline) return false;
      await new Promise((resolve) => setTimeout(resolve, everyMs));
    }
  }

  /** Whether the replica answers `SELECT 1` within `timeoutMs`. */
  async replicaHealthy(timeoutMs = 1_000): Promise<boolean> {
    return await probe(this.#read, timeoutMs);
  }

  /**
   * Whether the writer endpoint answers `SELECT 1` within `timeoutMs`; the answer of a look taken
   * less than `maxAgeMs` ago is given again without asking.
   */
  async primaryHealthy(timeoutMs = 1_000, maxAgeMs = 0): Promise<boolean> {
    const look = this.#primaryLook;
    if (look && performance.now() - look.atMs < maxAgeMs) return look.ok;
    // A look every maxAgeMs must not hold a connection on the primary in between.
    const ok = await probe(this.#write, timeoutMs, maxAgeMs > 0);
    this.#primaryLook = { ok, atMs: performance.now() };
    return ok;
  }
}

/**
 * `SELECT 1` through `pool`, false after `timeoutMs`. A probe that times out keeps its connection
 * until the server answers (a stopped server must not be mistaken for a healthy one meanwhile).
 */
async function probe(pool: pg.Pool, timeoutMs: number, close = false): Promise<boolean> {
  const attempt = withClient(
    pool,
    async (client) => {
      await client.query("SELECT 1");
      return true;
    },
    { close },
  ).catch(() => false);
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), timeoutMs);
  });
  try {
    return await Promise.race([attempt, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
