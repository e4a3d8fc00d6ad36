/**
 * The directory's schema: versioned migrations applied through the writer endpoint once per cell
 * primary, and a migrator that keeps retrying in the background while the primary is unreachable
 * (reads keep being served meanwhile; writes wait for the schema).
 */
import type pg from "pg";
import { withClient } from "./directory-store.js";

/** Schema versions, applied in order, each in a transaction of its own. Never edit a shipped one. */
export const MIGRATIONS: readonly { version: number; sql: string }[] = [
  {
    version: 1,
    sql: `CREATE TABLE users (
      tenant text NOT NULL,
      id text NOT NULL,
      name text NOT NULL,
      email text NOT NULL,
      created_at timestamptz NOT NULL DEFAULT now(),
      updated_at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (tenant, id)
    )`,
  },
  {
    version: 2,
    sql: `CREATE TABLE sign_ins (
      id bigserial PRIMARY KEY,
      tenant text NOT NULL,
      user_id text NOT NULL,
      at timestamptz NOT NULL DEFAULT now(),
      jti text NOT NULL UNIQUE
    )`,
  },
];

const MIGRATION_LOCK = "SELECT pg_advisory_lock(hashtext('ringfence-demo-migrations'))";
const MIGRATION_UNLOCK = "SELECT pg_advisory_unlock(hashtext('ringfence-demo-migrations'))";

/**
 * Applies the missing migrations through `pool` (the writer endpoint), under an advisory lock so
 * that instances starting together apply each version once. Returns the versions it applied.
 */
export async function migrate(pool: pg.Pool): Promise<number[]> {
  return await withClient(pool, async (client) => {
    // Each step is one round trip (a multi-statement simple query): the writer endpoint may be a
    // region away, and a cell's instances wait for each other here on its first start.
    const opened = (await client.query(
      `${MIGRATION_LOCK}; CREATE TABLE IF NOT EXISTS schema_migrations (version int PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now()); SELECT version FROM schema_migrations`,
    )) as unknown as pg.QueryResult<{ version: number }>[];
    try {
      const done = new Set((opened.at(-1)?.rows ?? []).map((r) => r.version));
      const applied: number[] = [];
      for (const m of MIGRATIONS) {
        if (done.has(m.version)) continue;
        try {
          // The version is ours (an integer), never input: safe to write into the statement.
          await client.query(
            `BEGIN; ${m.sql}; INSERT INTO schema_migrations (version, applied_at) VALUES (${Number(m.version)}, now()); COMMIT`,
          );
        } catch (err) {
          await client.query("ROLLBACK").catch(() => {});
          throw err;
        }
        applied.push(m.version);
      }
      return applied;
    } finally {
      // Also released when the session ends (a failed client is destroyed).
      await client.query(MIGRATION_UNLOCK).catch(() => {});
    }
  });
}

/** A start/stop event line, e.g. `{ event: "migrations.applied", applied: [1, 2] }`. */
export type LogEvent = { event: string } & Record<string, unknown>;

/**
 * True when every migration shows in `pool`'s database. Asked of the local replica first: what a
 * replica shows, its primary committed, so an instance that starts where the schema is in place
 * (every start but a cell's first) needs no lock and no round trip to a primary in another region.
 */
export async function migrationsVisible(pool: pg.Pool): Promise<boolean> {
  try {
    const { rows } = await pool.query<{ version: number }>("SELECT version FROM schema_migrations");
    const seen = new Set(rows.map((r) => r.version));
    return MIGRATIONS.every((m) => seen.has(m.version));
  } catch {
    return false; // no table yet, or the replica is unreachable: ask the primary
  }
}

/**
 * Runs `migrate` until it succeeds: the first attempt at `start()`, then every `retryMs` (default
 * one second) after a failure. Logs one line per change of state (waiting, applied), not per attempt.
 */
export class SchemaMigrator {
  readonly #pool: pg.Pool;
  readonly #log: (event: LogEvent) => void;
  readonly #retryMs: number;
  #state: "new" | "waiting" | "applied" | "stopped" = "new";
  #timer: NodeJS.Timeout | undefined;
  #first: Promise<void> | undefined;
  #inFlight: Promise<void> | undefined;

  readonly #replica: pg.Pool | undefined;

  /** `pool` reaches the primary (the writer endpoint); `replica`, when given, is looked at first. */
  constructor(pool: pg.Pool, log: (event: LogEvent) => void, retryMs = 1_000, replica?: pg.Pool) {
    this.#pool = pool;
    this.#replica = replica;
    this.#log = log;
    this.#retryMs = retryMs;
  }

  /** True once every migration is applied: writes may go ahead. */
  get applied(): boolean {
    return this.#state === "applied";
  }

  /**
   * Starts migrating; the promise settles when the first attempt succeeds or fails, or after
   * `waitMs` (a primary that accepts connections but cannot commit must not hold up the start).
   */
  async start(waitMs = 3_000): Promise<void> {
    this.#first ??= this.#attempt();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.#first,
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, waitMs);
      }),
    ]);
    clearTimeout(timer);
  }

  /**
   * True once the schema is applied; when it is not yet, tries again now rather than waiting for
   * the next retry (a write should not fail just because this instance's last try was early).
   */
  async ensure(): Promise<boolean> {
    if (this.#state === "applied") return true;
    if (this.#state === "stopped") return false;
    if (this.#inFlight === undefined) {
      clearTimeout(this.#timer);
      await this.#attempt();
    } else await this.#inFlight;
    return this.applied;
  }

  /** Stops retrying; an attempt under way finishes on its own. */
  stop(): void {
    this.#state = this.#state === "applied" ? "applied" : "stopped";
    clearTimeout(this.#timer);
  }

  #attempt(): Promise<void> {
    this.#inFlight ??= this.#try().finally(() => {
      this.#inFlight = undefined;
    });
    return this.#inFlight;
  }

  async #try(): Promise<void> {
    try {
      const applied =
        this.#replica && (await migrationsVisible(this.#replica)) ? [] : await migrate(this.#pool);
      if (this.#state === "stopped") return;
      this.#state = "applied";
      this.#log({ event: "migrations.applied", applied, latest: MIGRATIONS.at(-1)?.version ?? 0 });
    } catch (err) {
      if (this.#state === "stopped") return;
      if (this.#state !== "waiting") {
        this.#state = "waiting";
        this.#log({
          event: "migrations.waiting",
          reason: err instanceof Error ? err.message : String(err),
          retryMs: this.#retryMs,
        });
      }
      this.#timer = setTimeout(() => {
        this.#attempt().catch(() => {});
      }, this.#retryMs);
    }
  }
}
