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
    await client.query(MIGRATION_LOCK);
    try {
      await client.query(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version int PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())",
      );
      const done = new Set(
        (await client.query<{ version: number }>("SELECT version FROM schema_migrations")).rows.map(
          (r) => r.version,
        ),
      );
      const applied: number[] = [];
      for (const m of MIGRATIONS) {
        if (done.has(m.version)) continue;
        await client.query("BEGIN");
        try {
          await client.query(m.sql);
          await client.query("INSERT INTO schema_migrations (version, applied_at) VALUES ($1, now())", [
            m.version,
          ]);
          await client.query("COMMIT");
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

  constructor(pool: pg.Pool, log: (event: LogEvent) => void, retryMs = 1_000) {
    this.#pool = pool;
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
      const applied = await migrate(this.#pool);
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
