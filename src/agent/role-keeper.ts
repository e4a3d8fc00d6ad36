/**
 * Keeping a running PostgreSQL instance of a cell in the role the controller's desired state gives
 * it, one pass at a time, from its last probe:
 *
 * - desired primary, running as a standby: promoted (`pg_promote`), then its synchronous standbys set;
 * - desired primary, running as a primary: `synchronous_standby_names` kept as the cell's commit
 *   mode asks;
 * - desired standby, running as a primary (an old primary): stopped, to be rewound from the new
 *   primary at its next start;
 * - desired standby of another primary: `primary_conninfo` rewritten and reloaded; a standby that
 *   does not stream from its primary soon after (it is past the new primary's fork point) is
 *   restarted to be rewound, and re-cloned if that does not help either;
 * - during a switchover, a standby other than the target streams from the target already (a relay:
 *   see `CellState.switchingTo`), and is confirmed once it follows it onto its new timeline.
 *
 * The instance itself (its process, its data directory, its probe) is its DatabaseRunner's: this
 * decides what must change and asks the runner through `KeptInstance`.
 */
import { rmSync } from "node:fs";
import { join } from "node:path";
import type pg from "pg";
import { pgClient } from "../lib/postgres.js";
import type { CellState, DatabaseReport } from "../world/contracts.js";
import type { DatabaseSlot, Layout } from "../world/layout.js";
import type { Observed } from "./database-probe.js";
import { cellPrimary, cellUpstream, wantedStandbyNames } from "./database-settings.js";
import { askPrimary, type PrimaryState, type PrimaryTarget } from "./standby-repair.js";
import { type StandbyRepairKind, StreamWatch } from "./stream-watch.js";

/** What the role keeper needs of the instance it keeps: the DatabaseRunner's side of it. */
export interface KeptInstance {
  /** The last probe's answer; undefined while the instance is not running. */
  readonly observed: () => Observed | undefined;
  readonly report: () => DatabaseReport;
  /** The primary slot id the standby's `primary_conninfo` names (undefined on a primary). */
  readonly following: () => string | undefined;
  /** True once the instance is stopped for good. */
  readonly stopped: () => boolean;
  /** True while a role change has the instance stopped on purpose. */
  readonly stopping: () => boolean;
  /** Probes role and replication; never throws (see DatabaseRunner.probe). */
  readonly probe: () => Promise<void>;
  /** Sets the health detail reported for the instance. */
  readonly setDetail: (detail: string) => void;
  /** Writes the instance's settings for `primary` as its cell's primary; a reload applies them. */
  readonly writeSettings: (cell: CellState, primary: PrimaryTarget) => void;
  /** Stops the instance (fast shutdown) and starts it again, repairing its data first. */
  readonly restartWith: (repair: StandbyRepairKind) => Promise<void>;
  /** Forgets the repair the next start was to make (the instance is a primary now). */
  readonly cancelRepair: () => void;
}

export interface RoleKeeperOptions {
  readonly slot: DatabaseSlot;
  readonly layout: Layout;
  readonly syncQuorum: number;
  readonly dataDir: string;
  /** The cell's state as the agent last knew it from the desired state. */
  readonly cell: () => CellState | undefined;
  readonly instance: KeptInstance;
  /** Records a failover event about this instance (`database.promoted`, `database.repointed`, ...). */
  readonly onEvent: (kind: string, message: string, data: Record<string, unknown>) => void;
  /** Asks for a heartbeat now: the controller waits for what just changed (a promotion). */
  readonly onUrgentReport?: (() => void) | undefined;
  /** How long a repointed standby may take to stream from its new primary before it is rewound. Default 5 s. */
  readonly repointTimeoutMs?: number | undefined;
  /** How long a standby may fail to stream from a primary that answers before it is rewound. Default 15 s. */
  readonly stuckAfterMs?: number | undefined;
  readonly now: () => number;
}

type Primary = PrimaryTarget;

export class RoleKeeper {
  readonly slot: DatabaseSlot;
  #options: RoleKeeperOptions;
  #instance: KeptInstance;
  #now: () => number;
  /** When a standby that does not stream must be repaired. */
  #watch: StreamWatch;
  /** The standby was seen streaming on its primary's timeline since it was last (re)pointed or started. */
  #confirmed = false;
  #promoting = false;
  #commitModeSent: { value: string; at: number } | undefined;
  #nextPromoteAt = 0;
  #reconciling: Promise<void> | undefined;
  #again = false;

  constructor(options: RoleKeeperOptions) {
    this.#options = options;
    this.#instance = options.instance;
    this.#now = options.now;
    this.slot = options.slot;
    this.#watch = new StreamWatch({
      ...(options.repointTimeoutMs === undefined ? {} : { repointTimeoutMs: options.repointTimeoutMs }),
      ...(options.stuckAfterMs === undefined ? {} : { stuckAfterMs: options.stuckAfterMs }),
    });
  }

  /** True while a promotion is under way: the instance does not count as a primary yet. */
  get promoting(): boolean {
    return this.#promoting;
  }

  /** The pass under way, if any. */
  get pass(): Promise<void> | undefined {
    return this.#reconciling;
  }

  /** The instance was (re)started: whether it streams from its primary is not known yet. */
  restarted(): void {
    this.#watch.restarted();
    this.#confirmed = false;
  }

  /** The cell's primary database slot and how this instance reaches it. */
  #primary(): Primary | undefined {
    return cellPrimary(this.#options.layout, this.slot, this.#options.cell());
  }

  /** Where this instance streams from as a standby: the primary, or a switchover's target. */
  #upstream(): Primary | undefined {
    return cellUpstream(this.#options.layout, this.slot, this.#options.cell());
  }

  #wantedStandbyNames(cell: CellState): string {
    return wantedStandbyNames(this.#options.layout, this.slot, cell, this.#options.syncQuorum);
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
          await this.#instance.probe();
          await this.#act();
        } while (this.#again && !this.#instance.stopped());
      } catch (err) {
        this.#instance.setDetail(`reconcile failed: ${(err as Error).message}`);
      } finally {
        this.#reconciling = undefined;
      }
    })();
    return this.#reconciling;
  }

  async #act(): Promise<void> {
    const cell = this.#options.cell();
    const primary = this.#primary();
    const observed = this.#instance.observed();
    if (this.#instance.stopped() || this.#instance.stopping() || !cell || !primary || !observed) return;
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
      await this.#instance.restartWith("rewind");
      return;
    }
    const upstream = this.#upstream() ?? primary;
    if (this.#instance.following() !== upstream.slot.id) {
      await this.#repoint(cell, upstream);
      return;
    }
    await this.#watchStreaming(upstream, observed);
  }

  async #promote(cell: CellState, primary: Primary): Promise<void> {
    if (this.#now() < this.#nextPromoteAt) return;
    const started = this.#now();
    this.#promoting = true;
    try {
      let durationMs = 0;
      await this.#withAdmin(async (client) => {
        let promoted = true;
        try {
          // pg_promote(wait => true) checks for the end of recovery every 100 ms; polling every
          // 5 ms ourselves takes ~35 ms off a promotion that itself takes a few.
          await client.query("SELECT pg_promote(wait => false)");
        } catch (err) {
          // Promoted already (by a previous pass that failed after it): carry on with the settings.
          if (!/recovery is not in progress/.test((err as Error).message)) throw err;
          promoted = false;
        }
        const deadline = this.#now() + 30_000;
        while (promoted) {
          const row = (await client.query<{ standby: boolean }>("SELECT pg_is_in_recovery() AS standby"))
            .rows[0];
          if (row?.standby === false) break;
          if (this.#now() > deadline) throw new Error("still in recovery 30 s after pg_promote");
          if (this.#instance.stopped()) throw new Error("the agent is stopping");
          await new Promise((r) => setTimeout(r, 5));
        }
        durationMs = this.#now() - started;
        this.#instance.writeSettings(cell, primary);
        rmSync(join(this.#options.dataDir, "standby.signal"), { force: true });
        // On the same connection: a new one would cost its set-up before the commits can flow.
        await client.query("SELECT pg_reload_conf()");
      });
      this.#promoting = false;
      this.#instance.cancelRepair();
      this.#watch.healthy();
      await this.#instance.probe();
      const { flushLsn, timeline } = this.#instance.report();
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
    this.#instance.writeSettings(cell, primary);
    await this.#admin("SELECT pg_reload_conf()");
    this.#commitModeSent = { value: wanted, at: this.#now() };
    this.#event(
      "database.commit-mode",
      `commit mode ${cell.commit ?? "quorum"}: synchronous_standby_names '${current}' -> '${wanted}'`,
      { commit: cell.commit ?? "quorum", from: current, to: wanted },
    );
    this.#options.onUrgentReport?.();
  }

  /**
   * Points a standby at the cell's new primary, or at a switchover's target (a reload), and waits a
   * little for it to stream from it on the primary's timeline: for a target, until it is promoted.
   */
  async #repoint(cell: CellState, primary: Primary): Promise<void> {
    const from = this.#instance.following() ?? null;
    const started = this.#now();
    this.#instance.writeSettings(cell, primary);
    await this.#admin("SELECT pg_reload_conf()");
    this.#watch.repointed(started);
    this.#confirmed = false;
    const timeoutMs = this.#options.repointTimeoutMs ?? 5_000;
    let streaming = false;
    let announced = false;
    let askedAt = Number.NEGATIVE_INFINITY;
    while (
      !this.#instance.stopped() &&
      this.#now() - started < timeoutMs &&
      this.#upstream()?.slot.id === primary.slot.id
    ) {
      await new Promise((r) => setTimeout(r, 50));
      await this.#instance.probe();
      if (!this.#streamsFrom(primary)) continue;
      // A switchover fences the cell's writers once its other standbys stream from the target: say so now.
      if (!announced) this.#options.onUrgentReport?.();
      announced = true;
      if (this.#now() - askedAt < 200) continue;
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
    const receiver = this.#instance.observed()?.receiver;
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
      this.#instance.observed()?.receiver?.timeline === state.timeline
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
    // Relaying through a switchover's target: nothing to check until it is promoted (its timeline
    // is the old primary's until then), and nothing to repair against a standby.
    if (state.role === "standby" && this.#streamsFrom(primary)) return;
    if (state.role !== "primary") {
      this.#instance.setDetail(
        `standby not streaming: its primary ${primary.slot.id} is ${state.role === "standby" ? "not promoted yet" : `unreachable (${state.detail})`}`,
      );
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
    await this.#instance.restartWith(repair);
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
    this.#options.onEvent(kind, message, data);
  }
}
