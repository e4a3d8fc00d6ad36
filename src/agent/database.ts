/**
 * One PostgreSQL instance of a cell, run by the agent of its zone: created as a primary (initdb) or
 * as a standby of the current primary (pg_basebackup -R over the WAN), configured, supervised,
 * probed for role and replication every second, and kept in the role the controller's desired state
 * gives it (`reconcile`, see RoleKeeper).
 *
 * Each start first makes the data directory fit for the instance's role: an old primary (also one
 * found at start without `standby.signal`) that must follow another is rewound from the new primary
 * with pg_rewind (re-cloned when that fails), and so is a standby the RoleKeeper restarted because it
 * had diverged. Failed steps before a start are retried with the supervisor's backoff, never in a
 * tight loop.
 */
import { existsSync, rmSync } from "node:fs";
import { join } from "node:path";
import type pg from "pg";
import { RingfenceError } from "../lib/errors.js";
import {
  initPrimary,
  type PgBinaries,
  pgClient,
  type RunAs,
  signalGroup,
  spawnPostgres,
  stripPrimaryConninfo,
  writeSettings,
  writeStandbySignal,
} from "../lib/postgres.js";
import type { CellState, DatabaseReport, Health } from "../world/contracts.js";
import { type DatabaseSlot, type Layout, reach } from "../world/layout.js";
import { finished, ranAsPrimary, unfinished } from "./data-dir.js";
import { type Observed, probeInstance } from "./database-probe.js";
import { cellPrimary, instanceSettings } from "./database-settings.js";
import { RoleKeeper } from "./role-keeper.js";
import { type PrimaryTarget, StandbyRepair } from "./standby-repair.js";
import type { StandbyRepairKind } from "./stream-watch.js";
import { Supervised, type SupervisorEvent } from "./supervisor.js";

export interface DatabaseOptions {
  readonly slot: DatabaseSlot;
  readonly layout: Layout;
  readonly syncQuorum: number;
  readonly bin: PgBinaries;
  readonly runAs: RunAs | undefined;
  readonly dataDir: string;
  /** A cluster to copy a new primary from instead of running initdb (see `initPrimary`). */
  readonly template?: string;
  readonly logFile: string;
  /** The cell's state as the agent last knew it from the desired state. */
  readonly cell: () => CellState | undefined;
  readonly onEvent: (e: SupervisorEvent) => void;
  /** Records a failover event about this instance (`database.promoted`, `database.rewound`, ...). */
  readonly onDatabaseEvent?: (kind: string, message: string, data: Record<string, unknown>) => void;
  /** Asks for a heartbeat now: the controller waits for what just changed (a promotion). */
  readonly onUrgentReport?: () => void;
  /** How long a repointed standby may take to stream from its new primary before it is rewound. Default 5 s. */
  readonly repointTimeoutMs?: number;
  /**
   * How long a standby may fail to stream from a primary that answers before it is rewound (and,
   * the next time, re-cloned). Longer than PostgreSQL's 5 s between WAL receiver attempts, so that
   * a restarted primary is not taken for a lost one. Default 15 s.
   */
  readonly stuckAfterMs?: number;
  readonly now?: () => number;
}

type Repair = "none" | StandbyRepairKind;

type Primary = PrimaryTarget;

export class DatabaseRunner {
  readonly slot: DatabaseSlot;
  readonly supervised: Supervised;
  #options: DatabaseOptions;
  #now: () => number;
  #client: pg.Client | undefined;
  #health: Health = "unknown";
  #detail = "starting";
  #report: DatabaseReport;
  /** The last probe's answer; undefined while the instance is not running. */
  #observed: Observed | undefined;
  /** What the instance is busy with before it can run (cloning, rewinding), or why it cannot. */
  #activity: string | undefined;
  /** Set while a role change stops the instance: nothing may start it meanwhile. */
  #stopping = false;
  #stopped = false;
  /** The primary slot id the standby's `primary_conninfo` names (undefined on a primary). */
  #following: string | undefined;
  /** What the next start must do to the data before it may follow its primary. */
  #repair: Repair = "none";
  #probing: Promise<void> | undefined;
  #nextProbe: Promise<void> | undefined;
  #tools = new AbortController();
  #repairs: StandbyRepair;
  #role: RoleKeeper;

  constructor(options: DatabaseOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
    this.slot = options.slot;
    this.#report = {
      id: options.slot.id,
      role: "unknown",
      lsn: null,
      flushLsn: null,
      timeline: null,
      synchronousStandbyNames: null,
      standbys: [],
    };
    this.#role = new RoleKeeper({
      slot: options.slot,
      layout: options.layout,
      syncQuorum: options.syncQuorum,
      dataDir: options.dataDir,
      cell: options.cell,
      onEvent: (kind, message, data) => this.#event(kind, message, data),
      onUrgentReport: options.onUrgentReport,
      repointTimeoutMs: options.repointTimeoutMs,
      stuckAfterMs: options.stuckAfterMs,
      now: this.#now,
      instance: {
        observed: () => this.#observed,
        report: () => this.#report,
        following: () => this.#following,
        stopped: () => this.#stopped,
        stopping: () => this.#stopping,
        probe: () => this.probe(),
        setDetail: (detail) => {
          this.#detail = detail;
        },
        writeSettings: (cell, primary) => this.#writeSettings(cell, primary),
        restartWith: (repair) => this.#restartWith(repair),
        cancelRepair: () => {
          this.#repair = "none";
        },
      },
    });
    this.#repairs = new StandbyRepair({
      bin: options.bin,
      runAs: options.runAs,
      dataDir: options.dataDir,
      applicationName: options.slot.applicationName,
      signal: this.#tools.signal,
      now: this.#now,
      onEvent: (kind, message, data) => this.#event(kind, message, data),
      onActivity: (text) => {
        this.#activity = text;
        this.#detail = text;
      },
    });
    this.supervised = new Supervised({
      id: `database:${options.slot.id}`,
      prepare: async () => {
        try {
          await this.#prepare();
          this.#activity = undefined;
        } catch (err) {
          this.#activity = (err as Error).message;
          throw err;
        }
      },
      spawn: () => spawnPostgres(options.bin, options.dataDir, options.runAs, options.logFile),
      stopSignal: "SIGINT", // fast shutdown: a checkpoint, then exit; commits are already durable
      stopGraceMs: 30_000,
      forceKill: (child) => signalGroup(child, "SIGKILL"),
      onEvent: options.onEvent,
    });
  }

  /** The cell's primary database slot and how this instance reaches it. */
  #primary(): Primary | undefined {
    return cellPrimary(this.#options.layout, this.slot, this.#options.cell());
  }

  #writeSettings(cell: CellState, primary: Primary): void {
    const { layout, syncQuorum, dataDir, runAs } = this.#options;
    writeSettings(dataDir, instanceSettings(layout, this.slot, cell, primary.slot, syncQuorum), runAs);
    this.#following = primary.slot.id === this.slot.id ? undefined : primary.slot.id;
  }

  async #prepare(): Promise<void> {
    const { bin, runAs, dataDir, template } = this.#options;
    const cell = this.#options.cell();
    const primary = this.#primary();
    if (!cell || !primary) throw new Error("no desired state for this cell yet");
    const isPrimary = primary.slot.id === this.slot.id;
    this.#observed = undefined;
    // A copy or rewind that never finished (the agent died, or was stopped, meanwhile) left data
    // that must not be started: a half copy is started over, a half rewind copied afresh.
    const interrupted = unfinished(dataDir);
    if (interrupted === "clone") {
      rmSync(dataDir, { recursive: true, force: true });
      finished(dataDir);
    } else if (interrupted === "rewind") {
      if (isPrimary) {
        throw new RingfenceError(
          "RINGFENCE_PG_FAILED",
          `refusing to start ${dataDir} as the primary of ${cell.cell}: a pg_rewind of it was interrupted, so its data cannot be trusted; fail the cell over to another instance`,
        );
      }
      this.#repair = "reclone";
    }
    if (!existsSync(join(dataDir, "PG_VERSION"))) {
      if (isPrimary) {
        // A cell that has failed over has its data in its other instances: an empty new primary
        // would make them rewind or re-clone to nothing.
        if (cell.epoch > 1) {
          throw new RingfenceError(
            "RINGFENCE_PG_FAILED",
            `refusing to create an empty primary for ${cell.cell} at epoch ${cell.epoch}: its data directory ${dataDir} is missing; fail the cell over to an instance that has its data`,
          );
        }
        const started = this.#now();
        const how = await initPrimary(bin, dataDir, runAs, { ...(template ? { template } : {}) });
        const ms = this.#now() - started;
        const what = how === "template" ? `copied from the template ${template}` : "made by initdb";
        this.#event("database.initialised", `new cluster ${what} in ${ms} ms`, { durationMs: ms, how });
      } else {
        const asked = this.#now();
        const ms = await this.#repairs.clone(primary, "no data directory yet");
        const waitedMs = this.#now() - asked - ms;
        this.#event(
          "database.cloned",
          `cloned from the primary ${primary.slot.id} in ${ms} ms (${waitedMs} ms waiting for it to accept connections)`,
          { from: primary.slot.id, durationMs: ms, waitedMs },
        );
      }
    } else if (!isPrimary && (ranAsPrimary(dataDir) || this.#repair !== "none")) {
      // A failed repair keeps #repair as it was, for the next attempt after the backoff.
      const how = this.#repair === "reclone" ? "reclone" : "rewind";
      await this.#repairs.repair(
        primary,
        cell.epoch,
        how,
        interrupted ? "a pg_rewind was interrupted" : undefined,
      );
      this.#repair = "none";
    }
    // pg_basebackup -R wrote primary_conninfo into postgresql.auto.conf, which would override ours.
    stripPrimaryConninfo(dataDir);
    this.#writeSettings(cell, primary);
    if (!isPrimary && !existsSync(join(dataDir, "standby.signal"))) writeStandbySignal(dataDir, runAs);
    this.#role.restarted();
  }

  /** Starts the instance (no-op while a role change has it stopped on purpose). */
  start(): void {
    if (this.#stopping || this.#stopped) return;
    this.supervised.start();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#tools.abort();
    await this.#role.pass?.catch(() => {});
    await this.#dropClient();
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

  /**
   * Probes role and replication; never throws. The probe it resolves with began after the call: a
   * call while one is in flight (begun before whatever the caller just changed) waits for one more,
   * shared by every caller meanwhile.
   */
  probe(): Promise<void> {
    if (!this.#probing) {
      this.#probing = this.#probe().finally(() => {
        this.#probing = undefined;
      });
      return this.#probing;
    }
    this.#nextProbe ??= this.#probing.then(() => {
      this.#nextProbe = undefined;
      return this.probe();
    });
    return this.#nextProbe;
  }

  async #probe(): Promise<void> {
    if (
      this.supervised.state === "backoff" ||
      this.supervised.state === "stopped" ||
      this.supervised.pid === null
    ) {
      this.#health = "unhealthy";
      const exit = this.supervised.lastExit ? `, last ${this.supervised.lastExit}` : "";
      this.#detail = `not running (${this.supervised.state}${exit})${this.#activity ? `: ${this.#activity}` : ""}`;
      this.#observed = undefined;
      // What is durable on disk stays so while the instance is down: keep the last positions.
      this.#report = { ...this.#report, role: "unknown", lsn: null, standbys: [] };
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
      const observed = await probeInstance(this.#client, this.slot.id);
      this.#observed = observed;
      // A promoted instance counts as a primary once its synchronous standbys are set too.
      this.#report =
        this.#role.promoting && observed.role === "primary"
          ? { ...observed.report, role: "standby" }
          : { ...observed.report, streamingFrom: this.#streamingFrom(observed) };
      this.supervised.markRunning();
      if (observed.role === "standby" && observed.receiver?.status !== "streaming") {
        this.#health = "degraded";
        this.#detail = `standby not streaming (${observed.receiver?.status ?? "no WAL receiver"})`;
      } else {
        this.#health = "healthy";
        this.#detail =
          observed.role === "standby"
            ? `standby, streaming from ${this.#following ?? "?"}`
            : `primary, ${observed.report.standbys.length} standby(s) connected`;
      }
    } catch (err) {
      this.#observed = undefined;
      this.#health = "unhealthy";
      this.#detail = `probe failed: ${(err as Error).message}`;
      await this.#dropClient();
    }
  }

  /** The database slot this standby's WAL receiver streams from now, by where it connects; null when none. */
  #streamingFrom(observed: Observed): string | null {
    const receiver = observed.receiver;
    if (observed.role !== "standby" || receiver?.status !== "streaming") return null;
    const { layout } = this.#options;
    const from = layout.databases.find((d) => {
      if (d.cell !== this.slot.cell || d.id === this.slot.id) return false;
      const at = reach(layout, this.slot.region, d.region, d);
      return at.host === receiver.host && at.port === receiver.port;
    });
    return from?.id ?? null;
  }

  /**
   * Probes, then brings the instance to the role the desired state gives it (see RoleKeeper). One pass
   * at a time: a call during a pass asks for one more after it. Never throws.
   */
  reconcile(): Promise<void> {
    return this.#role.reconcile();
  }

  /** Stops the instance (fast shutdown) and starts it again, repairing its data first. */
  async #restartWith(repair: Repair): Promise<void> {
    this.#stopping = true;
    try {
      this.#repair = repair;
      await this.#dropClient();
      await this.supervised.stop();
      this.#observed = undefined;
    } finally {
      this.#stopping = false;
    }
    this.start();
  }

  #event(kind: string, message: string, data: Record<string, unknown>): void {
    this.#options.onDatabaseEvent?.(kind, message, data);
  }

  async #dropClient(): Promise<void> {
    const c = this.#client;
    this.#client = undefined;
    await c?.end().catch(() => {});
  }
}
