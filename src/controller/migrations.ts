/**
 * The control database's schema as an ordered list of SQL migrations. They are applied at start in
 * one transaction under an advisory lock, so two controllers starting at once never race, and each
 * applied version is recorded in `schema_migrations`. Migrations are append-only: never edit one that
 * has shipped, add the next version instead.
 */
import type pg from "pg";

export interface Migration {
  readonly version: number;
  readonly name: string;
  readonly sql: string;
}

/** Key of the advisory lock that serialises migration and first-start initialisation. */
export const SCHEMA_LOCK = 7_070_001;

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: "initial control-plane state",
    sql: `
      CREATE TABLE events (
        id bigserial PRIMARY KEY,
        at timestamptz NOT NULL,
        kind text NOT NULL,
        actor text NOT NULL,
        subject text NOT NULL,
        message text NOT NULL,
        data jsonb NOT NULL DEFAULT '{}'
      );
      CREATE TABLE cells (
        cell text PRIMARY KEY,
        primary_region text NOT NULL,
        epoch int NOT NULL CHECK (epoch >= 1),
        fenced boolean NOT NULL DEFAULT false,
        updated_at timestamptz NOT NULL
      );
      -- One row: the bucket → cell table, run-length encoded as [cell, count] pairs.
      CREATE TABLE bucket_table (
        singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
        version int NOT NULL,
        runs jsonb NOT NULL
      );
      CREATE TABLE agents (
        zone text PRIMARY KEY,
        last_heartbeat timestamptz NOT NULL,
        report jsonb NOT NULL
      );
      CREATE TABLE routers (
        region text PRIMARY KEY,
        last_heartbeat timestamptz NOT NULL,
        report jsonb NOT NULL
      );
      CREATE TABLE restarts (
        process_id text PRIMARY KEY,
        nonce int NOT NULL
      );
      -- One row: the world's identity and the desired-state version, bumped in the same transaction
      -- as every change to cells, restart nonces or the bucket table.
      CREATE TABLE world (
        singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
        topology text NOT NULL,
        desired_version bigint NOT NULL,
        initialised_at timestamptz NOT NULL
      );
    `,
  },
];

/** Applies every migration not yet in `schema_migrations`; returns the versions it applied. */
export async function migrate(client: pg.ClientBase, migrations = MIGRATIONS): Promise<number[]> {
  const applied: number[] = [];
  await client.query("BEGIN");
  try {
    await client.query("SELECT pg_advisory_xact_lock($1)", [SCHEMA_LOCK]);
    await client.query(
      `CREATE TABLE IF NOT EXISTS schema_migrations (
         version int PRIMARY KEY,
         name text NOT NULL,
         applied_at timestamptz NOT NULL DEFAULT now()
       )`,
    );
    const { rows } = await client.query<{ version: number }>("SELECT version FROM schema_migrations");
    const done = new Set(rows.map((r) => r.version));
    for (const m of [...migrations].sort((a, b) => a.version - b.version)) {
      if (done.has(m.version)) continue;
      await client.query(m.sql);
      await client.query("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", [
        m.version,
        m.name,
      ]);
      applied.push(m.version);
    }
    await client.query("COMMIT");
  } catch (err) {
    await client.query("ROLLBACK").catch(() => {});
    throw err;
  }
  return applied;
}
