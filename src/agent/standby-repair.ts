/**
 * Making a stopped data directory fit to follow a cell's primary as a standby: a first copy with
 * pg_basebackup (or the low-level backup API without it), a rewind with pg_rewind (an old primary,
 * or a standby past the new primary's fork point), and when the rewind fails or there is no
 * pg_rewind (PostgreSQL from npm), a fresh copy after setting the old data aside. Every step first
 * checks that the primary answers as a primary, and otherwise throws leaving the data untouched:
 * the supervisor retries after its backoff.
 */
import { RingfenceError } from "../lib/errors.js";
import { cloneStandbyAsync, type PgBinaries, pgClient, type RunAs, rewind } from "../lib/postgres.js";
import type { DatabaseSlot, Endpoint } from "../world/layout.js";
import { finished, lastLines, markIncomplete, moveAside } from "./data-dir.js";
import { timelineOfWalFile } from "./database-probe.js";

/** The cell's primary instance, and how the repaired instance reaches it. */
export interface PrimaryTarget {
  readonly slot: DatabaseSlot;
  readonly reach: Endpoint;
}

export interface StandbyRepairOptions {
  readonly bin: PgBinaries;
  readonly runAs: RunAs | undefined;
  readonly dataDir: string;
  /** The repaired instance's application name as a standby. */
  readonly applicationName: string;
  /** Aborting it kills a running pg_rewind or pg_basebackup. */
  readonly signal: AbortSignal;
  readonly now: () => number;
  readonly onEvent: (kind: string, message: string, data: Record<string, unknown>) => void;
  /** What it is doing now, for the instance's health detail. */
  readonly onActivity: (text: string) => void;
  /**
   * How long a step waits for the primary to answer as a primary (polling every 250 ms) before it
   * gives up and leaves the retry to the supervisor's backoff. Default 30 s.
   */
  readonly primaryWaitMs?: number;
}

/** What `askPrimary` learns: whether the instance answers, as a primary or not (yet), on which timeline. */
export interface PrimaryState {
  readonly role: "primary" | "standby" | "unreachable";
  /** The primary's timeline (null unless it answered as a primary). */
  readonly timeline: number | null;
  readonly detail: string;
}

/** Whether the instance at `primary` answers, and as a primary or not (yet). */
export async function askPrimary(primary: Endpoint, timeoutMs = 2_000): Promise<PrimaryState> {
  const client = pgClient(primary.host, primary.port, "postgres", {
    connectionTimeoutMillis: timeoutMs,
    query_timeout: timeoutMs,
  });
  client.on("error", () => {});
  try {
    await client.connect();
    const row = (
      await client.query<{ standby: boolean; walfile: string | null }>(
        `SELECT pg_is_in_recovery() AS standby,
                CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_walfile_name(pg_current_wal_lsn()) END AS walfile`,
      )
    ).rows[0];
    return row?.standby === false
      ? { role: "primary", timeline: timelineOfWalFile(row.walfile), detail: "a primary" }
      : { role: "standby", timeline: null, detail: "not promoted yet" };
  } catch (err) {
    return { role: "unreachable", timeline: null, detail: (err as Error).message };
  } finally {
    await client.end().catch(() => {});
  }
}

/** Throws unless `primary` answers as a primary: there is nothing to rewind or copy from otherwise. */
export async function requirePrimary(primary: PrimaryTarget): Promise<void> {
  const state = await askPrimary(primary.reach);
  if (state.role !== "primary") {
    throw new RingfenceError(
      "RINGFENCE_PG_FAILED",
      `waiting for the primary ${primary.slot.id} (${primary.reach.host}:${primary.reach.port}): ${state.detail}`,
    );
  }
}

// pg_rewind failed because the primary went away meanwhile: the data is fine, try again later.
const CONNECTION_FAILED = /could not connect|connection to server|timeout expired|Connection refused/i;

export class StandbyRepair {
  #o: StandbyRepairOptions;

  constructor(options: StandbyRepairOptions) {
    this.#o = options;
  }

  /**
   * Waits until `primary` answers as a primary: a world starting, a new primary being promoted. A
   * dependency that is about to come is waited for here rather than with the supervisor's growing
   * backoff, which would start the copy or rewind seconds after it could have; after `primaryWaitMs`
   * it throws, and the backoff takes over.
   */
  async #waitForPrimary(primary: PrimaryTarget): Promise<void> {
    const deadline = this.#o.now() + (this.#o.primaryWaitMs ?? 30_000);
    for (;;) {
      const state = await askPrimary(primary.reach);
      if (state.role === "primary") return;
      const message = `waiting for the primary ${primary.slot.id} (${primary.reach.host}:${primary.reach.port}): ${state.detail}`;
      if (this.#o.now() >= deadline || this.#o.signal.aborted) {
        throw new RingfenceError("RINGFENCE_PG_FAILED", message);
      }
      this.#o.onActivity(message);
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  /** Creates the standby from nothing with pg_basebackup; returns how long the copy took. */
  async clone(primary: PrimaryTarget, why: string): Promise<number> {
    await this.#waitForPrimary(primary);
    const started = this.#o.now();
    this.#o.onActivity(`cloning from the primary ${primary.slot.id} (${why})`);
    markIncomplete(this.#o.dataDir, "clone");
    await cloneStandbyAsync(
      this.#o.bin,
      this.#o.dataDir,
      this.#o.runAs,
      { ...primary.reach, applicationName: this.#o.applicationName },
      { signal: this.#o.signal },
    );
    finished(this.#o.dataDir);
    return this.#o.now() - started;
  }

  /**
   * Rewinds the stopped data directory to `primary`'s history (events `database.rewound`), or
   * copies it afresh (`database.recloned`, `why` as its reason) when `how` says so or pg_rewind
   * fails. Refuses to replace data of another database system (pg_rewind's "different systems"):
   * that takes an operator.
   */
  async repair(
    primary: PrimaryTarget,
    epoch: number,
    how: "rewind" | "reclone",
    why = "a rewind did not get it streaming",
  ): Promise<void> {
    await this.#waitForPrimary(primary);
    if (how === "reclone") {
      await this.#reclone(primary, why);
      return;
    }
    if (!this.#o.bin.hasRewind) {
      // PostgreSQL from npm has no pg_rewind: a fresh copy is the only way back to the primary's history.
      await this.#reclone(primary, `no pg_rewind in ${this.#o.bin.bindir}`);
      return;
    }
    this.#o.onActivity(`rewinding from the primary ${primary.slot.id}`);
    const started = this.#o.now();
    let result: Awaited<ReturnType<typeof rewind>>;
    markIncomplete(this.#o.dataDir, "rewind");
    try {
      result = await rewind(this.#o.bin, this.#o.dataDir, this.#o.runAs, primary.reach, {
        signal: this.#o.signal,
      });
    } catch (err) {
      const message = (err as Error).message;
      // pg_rewind changes nothing before it says where it rewinds from: until then the data is whole.
      const untouched = !/rewinding from last common checkpoint/.test(message);
      if (untouched) finished(this.#o.dataDir);
      // The primary went away (keep the data, try again after the backoff), or the agent stops (a
      // half-rewound directory keeps its marker: the next start re-clones it).
      if ((untouched && CONNECTION_FAILED.test(message)) || this.#o.signal.aborted) throw err;
      if (untouched && /different systems/i.test(message)) {
        throw new RingfenceError(
          "RINGFENCE_PG_FAILED",
          `refusing to replace ${this.#o.dataDir}: it is not a copy of the same database as the primary ${primary.slot.id} (pg_rewind: source and target clusters are from different systems); move it away by hand if that primary is right`,
        );
      }
      await this.#reclone(primary, `pg_rewind failed: ${lastLines(message, 3)}`);
      return;
    }
    finished(this.#o.dataDir);
    const durationMs = this.#o.now() - started;
    const diverged = result.divergedAt;
    this.#o.onEvent(
      "database.rewound",
      result.rewound
        ? `rewound from ${primary.slot.id} in ${durationMs} ms${diverged ? `: diverged at WAL ${diverged.lsn} on timeline ${diverged.timeline}, what it wrote after that is gone` : ""}`
        : `no rewind needed to follow ${primary.slot.id} (checked in ${durationMs} ms)`,
      {
        durationMs,
        source: primary.slot.id,
        epoch,
        rewound: result.rewound,
        divergedAtLsn: diverged?.lsn ?? null,
        divergedOnTimeline: diverged?.timeline ?? null,
        output: lastLines(result.output, 6),
      },
    );
  }

  async #reclone(primary: PrimaryTarget, reason: string): Promise<void> {
    await requirePrimary(primary); // nothing to copy from: keep the data where it is
    const aside = moveAside(this.#o.dataDir, new Date());
    finished(this.#o.dataDir); // what a marker was about is set aside
    const durationMs = await this.clone(primary, reason);
    this.#o.onEvent(
      "database.recloned",
      `re-cloned from ${primary.slot.id} in ${durationMs} ms (${reason}); the old data is in ${aside}`,
      { durationMs, source: primary.slot.id, reason, movedAside: aside },
    );
  }
}
