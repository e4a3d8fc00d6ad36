/**
 * One PostgreSQL instance of a cell, run by the agent of its zone: created as a primary (initdb) or
 * as a standby of the current primary (pg_basebackup -R over the WAN), configured, supervised,
 * probed for role and replication every second, and kept in the role the controller's desired state
 * gives it (`reconcile`):
 *
 * - desired primary, running as a standby: promoted (`pg_promote`), then its synchronous standbys set;
 * - desired primary, running as a primary: `synchronous_standby_names` kept as the cell's commit
 *   mode asks;
 * - desired standby, running as a primary (an old primary, also one found at start without
 *   `standby.signal`): stopped, rewound from the new primary with pg_rewind (re-cloned when that
 *   fails), started as its standby;
 * - desired standby of another primary: `primary_conninfo` rewritten and reloaded; a standby that
 *   does not stream from its primary soon after (it is past the new primary's fork point) is
 *   rewound, and re-cloned if that does not help either.
 *
 * Failed steps before a start are retried with the supervisor's backoff, never in a tight loop.
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
import { instanceSettings, wantedStandbyNames } from "./database-settings.js";
import { askPrimary, type PrimaryState, type PrimaryTarget, StandbyRepair } from "./standby-repair.js";
import { type StandbyRepairKind, StreamWatch } from "./stream-watch.js";
import { Supervised, type SupervisorEvent } from "./supervisor.js";

export interface DatabaseOptions {
  readonly slot: DatabaseSlot;
  readonly layout: Layout;
  readonly syncQuorum: number;
  readonly bin: PgBinaries;
  readonly runAs: RunAs | undefined;
  readonly dataDir: string;
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
  #promoting = false;
  #stopped = false;
  /** The primary slot id the standby's `primary_conninfo` names (undefined on a primary). */
  #following: string | undefined;
  /** When a standby that does not stream must be repaired. */
  #watch: StreamWatch;
  /** The standby was seen streaming on its primary's timeline since it was last (re)pointed or started. */
  #confirmed = false;
  /** What the next start must do to the data before it may follow its primary. */
  #repair: Repair = "none";
  #commitModeSent: { value: string; at: number } | undefined;
  #nextPromoteAt = 0;
  #reconciling: Promise<void> | undefined;
  #probing: Promise<void> | undefined;
  #nextProbe: Promise<void> | undefined;
  #again = false;
  #tools = new AbortController();
  #repairs: StandbyRepair;

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
    this.#watch = new StreamWatch({
      ...(options.repointTimeoutMs === undefined ? {} : { repointTimeoutMs: options.repointTimeoutMs }),
      ...(options.stuckAfterMs === undefined ? {} : { stuckAfterMs: options.stuckAfterMs }),
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
    const cell = this.#options.cell();
    if (!cell) return undefined;
    const slot = this.#options.layout.databases.find(
      (d) => d.cell === this.slot.cell && d.region === cell.primary,
    );
    if (!slot) return undefined;
    return { slot, reach: reach(this.#options.layout, this.slot.region, slot.region, slot) };
  }

  #wantedStandbyNames(cell: CellState): string {
    return wantedStandbyNames(this.#options.layout, this.slot, cell, this.#options.syncQuorum);
  }

  #writeSettings(cell: CellState, primary: Primary): void {
    const { layout, syncQuorum, dataDir, runAs } = this.#options;
    writeSettings(dataDir, instanceSettings(layout, this.slot, cell, primary.slot, syncQuorum), runAs);
    this.#following = primary.slot.id === this.slot.id ? undefined : primary.slot.id;
  }

  async #prepare(): Promise<void> {
    const { bin, runAs, dataDir } = this.#options;
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
        initPrimary(bin, dataDir, runAs);
      } else {
        await this.#repairs.clone(primary, "no data directory yet");
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
    this.#watch.restarted();
    this.#confirmed = false;
  }

  /** Starts the instance (no-op while a role change has it stopped on purpose). */
  start(): void {
    if (this.#stopping || this.#stopped) return;
    this.supervised.start();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#tools.abort();
    await this.#reconciling?.catch(() => {});
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
        this.#promoting && observed.role === "primary"
          ? { ...observed.report, role: "standby" }
          : observed.report;
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

  /**
   * Probes, then brings the instance to the role the desired state gives it (see the file comment).
   * One pass at a time: a call during a pass asks for one more after it. Never throws.
   */
  reconcile(): Promise<void> {
    if (this.#reconciling) {
      this.#again = true;
      return this.#reconciling;
    }
    this.#reconciling = (async () => {
      try {
        do {
          this.#again = false;
          await this.probe();
          await this.#act();
        } while (this.#again && !this.#stopped);
      } catch (err) {
        this.#detail = `reconcile failed: ${(err as Error).message}`;
      } finally {
        this.#reconciling = undefined;
      }
    })();
    return this.#reconciling;
  }

  async #act(): Promise<void> {
    const cell = this.#options.cell();
    const primary = this.#primary();
    const observed = this.#observed;
    if (this.#stopped || this.#stopping || !cell || !primary || !observed) return;
    if (primary.slot.id === this.slot.id) {
      if (observed.role === "standby") await this.#promote(cell, primary);
      else await this.#keepCommitMode(cell, primary, observed);
      return;
    }
    if (observed.role === "primary") {
      this.#event(
        "database.demoted",
        `stopping to rejoin as a standby of ${primary.slot.id} (epoch ${cell.epoch}): the cell's primary moved`,
        { primary: primary.slot.id, epoch: cell.epoch, flushLsn: observed.report.flushLsn ?? null },
      );
      await this.#restartWith("rewind");
      return;
    }
    if (this.#following !== primary.slot.id) {
      await this.#repoint(cell, primary);
      return;
    }
    await this.#watchStreaming(primary, observed);
  }

  async #promote(cell: CellState, primary: Primary): Promise<void> {
    if (this.#now() < this.#nextPromoteAt) return;
    const started = this.#now();
    this.#promoting = true;
    try {
      await this.#withAdmin(async (client) => {
        try {
          // pg_promote(wait => true) checks for the end of recovery every 100 ms; polling every
          // 5 ms ourselves takes ~35 ms off a promotion that itself takes a few.
          await client.query("SELECT pg_promote(wait => false)");
        } catch (err) {
          // Promoted already (by a previous pass that failed after it): carry on with the settings.
          if (/recovery is not in progress/.test((err as Error).message)) return;
          throw err;
        }
        const deadline = this.#now() + 30_000;
        for (;;) {
          const row = (await client.query<{ standby: boolean }>("SELECT pg_is_in_recovery() AS standby"))
            .rows[0];
          if (row?.standby === false) return;
          if (this.#now() > deadline) throw new Error("still in recovery 30 s after pg_promote");
          if (this.#stopped) throw new Error("the agent is stopping");
          await new Promise((r) => setTimeout(r, 5));
        }
      });
      const durationMs = this.#now() - started;
      this.#writeSettings(cell, primary);
      rmSync(join(this.#options.dataDir, "standby.signal"), { force: true });
      await this.#admin("SELECT pg_reload_conf()");
      this.#promoting = false;
      this.#repair = "none";
      this.#watch.healthy();
      await this.probe();
      const { flushLsn, timeline } = this.#report;
      this.#event(
        "database.promoted",
        `promoted to primary of ${cell.cell} (epoch ${cell.epoch}) in ${durationMs} ms, at WAL ${flushLsn ?? "?"} on timeline ${timeline ?? "?"}`,
        {
          durationMs,
          epoch: cell.epoch,
          lsn: flushLsn ?? null,
          timeline: timeline ?? null,
          synchronousStandbyNames: this.#wantedStandbyNames(cell),
        },
      );
      this.#options.onUrgentReport?.();
    } catch (err) {
      this.#nextPromoteAt = this.#now() + 2_000;
      this.#event("database.promote-failed", `promotion failed: ${(err as Error).message}`, {
        epoch: cell.epoch,
      });
    } finally {
      this.#promoting = false;
    }
  }

  /** Rewrites `synchronous_standby_names` when it is not what the cell's commit mode asks. */
  async #keepCommitMode(cell: CellState, primary: Primary, observed: Observed): Promise<void> {
    const wanted = this.#wantedStandbyNames(cell);
    const current = observed.report.synchronousStandbyNames ?? "";
    if (current === wanted) {
      this.#commitModeSent = undefined;
      return;
    }
    const sent = this.#commitModeSent;
    if (sent?.value === wanted && this.#now() - sent.at < 5_000) return; // the reload is on its way
    this.#writeSettings(cell, primary);
    await this.#admin("SELECT pg_reload_conf()");
    this.#commitModeSent = { value: wanted, at: this.#now() };
    this.#event(
      "database.commit-mode",
      `commit mode ${cell.commit ?? "quorum"}: synchronous_standby_names '${current}' -> '${wanted}'`,
      { commit: cell.commit ?? "quorum", from: current, to: wanted },
    );
    this.#options.onUrgentReport?.();
  }

  /** Points a standby at the cell's new primary (a reload) and waits a little for it to stream. */
  async #repoint(cell: CellState, primary: Primary): Promise<void> {
    const from = this.#following ?? null;
    const started = this.#now();
    this.#writeSettings(cell, primary);
    await this.#admin("SELECT pg_reload_conf()");
    this.#watch.repointed(started);
    this.#confirmed = false;
    const timeoutMs = this.#options.repointTimeoutMs ?? 5_000;
    let streaming = false;
    let askedAt = Number.NEGATIVE_INFINITY;
    while (
      !this.#stopped &&
      this.#now() - started < timeoutMs &&
      this.#primary()?.slot.id === primary.slot.id
    ) {
      await new Promise((r) => setTimeout(r, 50));
      await this.probe();
      if (!this.#streamsFrom(primary) || this.#now() - askedAt < 200) continue;
      askedAt = this.#now();
      streaming = this.#followsOn(primary, await askPrimary(primary.reach));
      if (streaming) break;
    }
    if (streaming) {
      this.#confirmed = true;
      this.#watch.healthy();
    }
    const durationMs = this.#now() - started;
    this.#event(
      "database.repointed",
      streaming
        ? `following ${primary.slot.id} (was ${from ?? "none"}): streaming after ${durationMs} ms`
        : `following ${primary.slot.id} (was ${from ?? "none"}): not streaming yet after ${durationMs} ms`,
      { from, to: primary.slot.id, epoch: cell.epoch, durationMs, streaming },
    );
  }

  #streamsFrom(primary: Primary): boolean {
    const receiver = this.#observed?.receiver;
    return (
      receiver?.status === "streaming" &&
      receiver.host === primary.reach.host &&
      receiver.port === primary.reach.port
    );
  }

  /**
   * Whether the standby follows `primary` for real: it streams from it on the primary's timeline. A
   * standby past a new primary's fork point streams the old timeline up to the fork, fails, and
   * starts over: it shows as streaming now and then, but never on the new timeline.
   */
  #followsOn(primary: Primary, state: PrimaryState): boolean {
    return (
      state.role === "primary" &&
      this.#streamsFrom(primary) &&
      state.timeline !== null &&
      this.#observed?.receiver?.timeline === state.timeline
    );
  }

  /**
   * A standby that does not follow a primary that answers as one, for longer than a repoint or a
   * WAL receiver retry should take (see StreamWatch), has diverged from it or lost the WAL it needs:
   * it is rewound, and re-cloned if it still does not stream after that. Once it has been seen
   * following, streaming from the primary is enough: the primary is asked again only when it stops.
   */
  async #watchStreaming(primary: Primary, observed: Observed): Promise<void> {
    if (this.#confirmed && this.#streamsFrom(primary)) {
      this.#watch.healthy();
      return;
    }
    this.#confirmed = false;
    const state = await askPrimary(primary.reach);
    if (this.#followsOn(primary, state)) {
      this.#confirmed = true;
      this.#watch.healthy();
      return;
    }
    if (state.role !== "primary") {
      this.#detail = `standby not streaming: its primary ${primary.slot.id} is ${state.role === "standby" ? "not promoted yet" : `unreachable (${state.detail})`}`;
    }
    const decision = this.#watch.notStreaming(this.#now(), state.role === "primary");
    if (!decision) return;
    const { repair, waitedMs } = decision;
    this.#event(
      "database.diverged",
      `not streaming from ${primary.slot.id} for ${waitedMs} ms although it answers (WAL receiver: ${observed.receiver?.status ?? "none"}): ${repair === "rewind" ? "rewinding" : "re-cloning"}`,
      {
        primary: primary.slot.id,
        waitedMs,
        repair,
        replayLsn: observed.report.lsn,
        timeline: observed.report.timeline ?? null,
      },
    );
    await this.#restartWith(repair);
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

  /** Runs `work` on a connection of its own (the probe's client keeps its short timeout). */
  async #withAdmin<T>(work: (client: pg.Client) => Promise<T>, timeoutMs = 5_000): Promise<T> {
    const client = pgClient(this.slot.host, this.slot.port, "postgres", { query_timeout: timeoutMs });
    client.on("error", () => {});
    try {
      await client.connect();
      return await work(client);
    } finally {
      await client.end().catch(() => {});
    }
  }

  async #admin(sql: string): Promise<void> {
    await this.#withAdmin((client) => client.query(sql));
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
