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
  {
    version: 2,
    name: "drains",
    sql: `
      -- Active operator drains; a removed drain is deleted (its history is in the event log).
      -- The id clients see is 'drain-' || n.
      CREATE TABLE drains (
        n bigserial PRIMARY KEY,
        kind text NOT NULL CHECK (kind IN ('region', 'zone', 'instance')),
        target text NOT NULL,
        reason text NOT NULL,
        created_at timestamptz NOT NULL,
        UNIQUE (kind, target)
      );
    `,
  },
  {
    version: 3,
    name: "router telemetry",
    sql: `
      -- One row per router window and (service, route, cell, region served, version, status).
      -- Kept for 24 hours; latencies in milliseconds.
      CREATE TABLE telemetry (
        window_start timestamptz NOT NULL,
        window_ms int NOT NULL,
        router text NOT NULL,
        service text NOT NULL,
        route text NOT NULL,
        cell text NOT NULL,
        region_served text NOT NULL,
        version text NOT NULL,
        status int NOT NULL,
        requests bigint NOT NULL,
        retries bigint NOT NULL,
        p50 double precision NOT NULL,
        p95 double precision NOT NULL,
        p99 double precision NOT NULL,
        max double precision NOT NULL,
        sum_ms double precision NOT NULL
      );
      CREATE INDEX telemetry_window_start ON telemetry (window_start);
      CREATE TABLE tenant_telemetry (
        window_start timestamptz NOT NULL,
        router text NOT NULL,
        tenant text NOT NULL,
        cell text NOT NULL,
        service text NOT NULL,
        route text NOT NULL,
        requests bigint NOT NULL,
        errors bigint NOT NULL
      );
      CREATE INDEX tenant_telemetry_window_start ON tenant_telemetry (window_start);
      CREATE INDEX tenant_telemetry_tenant ON tenant_telemetry (tenant, window_start);
    `,
  },
  {
    version: 4,
    name: "telemetry window ids",
    sql: `
      -- One row per router window stored in telemetry and tenant_telemetry: a window shipped again
      -- (its first answer was lost) finds its id here and is not stored twice. Pruned with them.
      CREATE TABLE telemetry_windows (
        router text NOT NULL,
        window_id text NOT NULL,
        window_start timestamptz NOT NULL,
        PRIMARY KEY (router, window_id)
      );
      CREATE INDEX telemetry_windows_window_start ON telemetry_windows (window_start);
    `,
  },
  {
    version: 5,
    name: "failover",
    sql: `
      -- Where a cell stands: serving, failing over (fenced, reading positions), awaiting an
      -- operator's consent, promoting, or switching over; the failover under way, if any; and how
      -- its primary commits (quorum, or async under the 'available' durability policy).
      ALTER TABLE cells ADD COLUMN phase text NOT NULL DEFAULT 'serving';
      ALTER TABLE cells ADD COLUMN commit_mode text NOT NULL DEFAULT 'quorum';
      ALTER TABLE cells ADD COLUMN failover jsonb;
      -- Every failover and switchover once finished: its steps with their timings, the decision,
      -- the consent and estimate when there was one, and the loss found afterwards.
      CREATE TABLE failovers (
        id bigserial PRIMARY KEY,
        cell text NOT NULL,
        kind text NOT NULL,
        started_at timestamptz NOT NULL,
        finished_at timestamptz NOT NULL,
        record jsonb NOT NULL
      );
      CREATE INDEX failovers_cell ON failovers (cell, started_at);
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
