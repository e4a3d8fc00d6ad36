/**
 * One PostgreSQL instance of a cell, run by the agent of its zone: created as a primary (initdb) or
 * as a standby of the current primary (pg_basebackup -R over the WAN), configured, supervised, and
 * probed for role and replication every second.
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type pg from "pg";
import {
  baseSettings,
  cloneStandby,
  initPrimary,
  PG_SUPERUSER,
  type PgBinaries,
  pgClient,
  type RunAs,
  signalGroup,
  spawnPostgres,
  synchronousStandbyNames,
  writeSettings,
} from "../lib/postgres.js";
import type { CellState, DatabaseReport, Health } from "../world/contracts.js";
import { type DatabaseSlot, type Layout, reach } from "../world/layout.js";
import { Supervised, type SupervisorEvent } from "./supervisor.js";

export interface DatabaseOptions {
  readonly slot: DatabaseSlot;
  readonly layout: Layout;
  readonly syncQuorum: number;
  readonly bin: PgBinaries;
  readonly runAs: RunAs | undefined;
  readonly dataDir: string;
  readonly logFile: string;
  readonly cell: () => CellState | undefined;
  readonly onEvent: (e: SupervisorEvent) => void;
}

export class DatabaseRunner {
  readonly slot: DatabaseSlot;
  readonly supervised: Supervised;
  #options: DatabaseOptions;
  #client: pg.Client | undefined;
  #health: Health = "unknown";
  #detail = "starting";
  #report: DatabaseReport;

  constructor(options: DatabaseOptions) {
    this.#options = options;
    this.slot = options.slot;
    this.#report = {
      id: options.slot.id,
      role: "unknown",
      lsn: null,
      synchronousStandbyNames: null,
      standbys: [],
    };
    this.supervised = new Supervised({
      id: `database:${options.slot.id}`,
      prepare: async () => this.#prepare(),
      spawn: () => spawnPostgres(options.bin, options.dataDir, options.runAs, options.logFile),
      stopSignal: "SIGINT", // fast shutdown: a checkpoint, then exit; commits are already durable
      stopGraceMs: 30_000,
      forceKill: (child) => signalGroup(child, "SIGKILL"),
      onEvent: options.onEvent,
    });
  }

  /** The cell's primary database slot and how this instance reaches it. */
  #primary(): { slot: DatabaseSlot; reach: { host: string; port: number } } | undefined {
    const cell = this.#options.cell();
    if (!cell) return undefined;
    const slot = this.#options.layout.databases.find(
      (d) => d.cell === this.slot.cell && d.region === cell.primary,
    );
    if (!slot) return undefined;
    return { slot, reach: reach(this.#options.layout, this.slot.region, slot.region, slot) };
  }

  async #prepare(): Promise<void> {
    const { bin, runAs, dataDir, layout, syncQuorum } = this.#options;
    const primary = this.#primary();
    if (!primary) throw new Error("no desired state for this cell yet");
    const isPrimary = primary.slot.id === this.slot.id;
    if (!existsSync(join(dataDir, "PG_VERSION"))) {
      if (isPrimary) initPrimary(bin, dataDir, runAs);
      else {
        this.#detail = `cloning from the primary in ${primary.slot.region}`;
        cloneStandby(bin, dataDir, runAs, { ...primary.reach, applicationName: this.slot.applicationName });
      }
    }
    // pg_basebackup -R wrote primary_conninfo into postgresql.auto.conf, which would override ours.
    const auto = join(dataDir, "postgresql.auto.conf");
    if (existsSync(auto)) {
      const text = readFileSync(auto, "utf8");
      const kept = text
        .split("\n")
        .filter((l) => !l.startsWith("primary_conninfo"))
        .join("\n");
      if (kept !== text) writeFileSync(auto, kept);
    }
    const others = layout.databases.filter((d) => d.cell === this.slot.cell && d.id !== this.slot.id);
    const settings: Record<string, string | number> = { ...baseSettings(this.slot.host, this.slot.port) };
    if (isPrimary) {
      // Only out-of-region standbys count: one replica per region, so every other replica is.
      settings.synchronous_standby_names = synchronousStandbyNames(
        syncQuorum,
        others.map((d) => d.applicationName),
      );
    } else {
      settings.primary_conninfo = `host=${primary.reach.host} port=${primary.reach.port} user=${PG_SUPERUSER} application_name=${this.slot.applicationName}`;
    }
    writeSettings(dataDir, settings, runAs);
  }

  start(): void {
    this.supervised.start();
  }

  async stop(): Promise<void> {
    await this.#client?.end().catch(() => {});
    this.#client = undefined;
    await this.supervised.stop();
  }

  get health(): Health {
    return this.#health;
  }
  get detail(): string {
    return this.#detail;
  }
  get report(): DatabaseReport {
    return this.#report;
  }

  /** Probes role and replication; never throws. */
  async probe(): Promise<void> {
    if (
      this.supervised.state === "backoff" ||
      this.supervised.state === "stopped" ||
      this.supervised.pid === null
    ) {
      this.#health = "unhealthy";
      this.#detail = `not running (${this.supervised.state}${this.supervised.lastExit ? `, last ${this.supervised.lastExit}` : ""})`;
      await this.#dropClient();
      return;
    }
    try {
      if (!this.#client) {
        const client = pgClient(this.slot.host, this.slot.port, "postgres", { query_timeout: 1_500 });
        client.on("error", () => {});
        await client.connect();
        this.#client = client;
      }
      const client = this.#client;
      const row = (
        await client.query<{ standby: boolean; lsn: string | null; ssn: string; receiver: string | null }>(
          `SELECT pg_is_in_recovery() AS standby,
                  CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()::text ELSE pg_current_wal_lsn()::text END AS lsn,
                  current_setting('synchronous_standby_names') AS ssn,
                  (SELECT status FROM pg_stat_wal_receiver LIMIT 1) AS receiver`,
        )
      ).rows[0];
      if (!row) throw new Error("no answer");
      let standbys: DatabaseReport["standbys"] = [];
      if (!row.standby) {
        const rows = await client.query<{
          application_name: string;
          state: string;
          sync_state: string;
          lag_bytes: string | null;
          flush_lag_ms: string | null;
          replay_lag_ms: string | null;
        }>(
          `SELECT application_name, state, sync_state,
                  pg_wal_lsn_diff(pg_current_wal_lsn(), flush_lsn)::text AS lag_bytes,
                  (EXTRACT(EPOCH FROM flush_lag) * 1000)::text AS flush_lag_ms,
                  (EXTRACT(EPOCH FROM replay_lag) * 1000)::text AS replay_lag_ms
             FROM pg_stat_replication ORDER BY application_name`,
        );
        standbys = rows.rows.map((r) => ({
          applicationName: r.application_name,
          state: r.state,
          syncState: r.sync_state,
          lagBytes: Number(r.lag_bytes ?? 0),
          flushLagMs: r.flush_lag_ms === null ? null : Number(r.flush_lag_ms),
          replayLagMs: r.replay_lag_ms === null ? null : Number(r.replay_lag_ms),
        }));
      }
      this.#report = {
        id: this.slot.id,
        role: row.standby ? "standby" : "primary",
        lsn: row.lsn,
        synchronousStandbyNames: row.ssn === "" ? null : row.ssn,
        standbys,
      };
      this.supervised.markRunning();
      if (row.standby && row.receiver !== "streaming") {
        this.#health = "degraded";
        this.#detail = `standby not streaming (${row.receiver ?? "no WAL receiver"})`;
      } else {
        this.#health = "healthy";
        this.#detail = row.standby
          ? "standby, streaming"
          : `primary, ${standbys.length} standby(s) connected`;
      }
    } catch (err) {
      this.#health = "unhealthy";
      this.#detail = `probe failed: ${(err as Error).message}`;
      await this.#dropClient();
    }
  }

  async #dropClient(): Promise<void> {
    const c = this.#client;
    this.#client = undefined;
    await c?.end().catch(() => {});
  }
}
