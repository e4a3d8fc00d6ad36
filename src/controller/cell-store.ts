/**
 * Cells in the control database as failover moves them: which region is primary (and the epoch,
 * bumped with it), whether writers are fenced, how the primary commits, the failover phase and the
 * failover under way, and the history of finished failovers. Every change that agents must act on
 * bumps the desired version in the same transaction, with its events.
 */
import type { CellState, WorldEvent } from "../world/contracts.js";
import type { ControlDatabase, Tx } from "./database.js";
import { CELL_COLUMNS, type CellRow, type NewEvent, row, toCell } from "./store-records.js";

/** Where a cell stands in the failover cycle. */
export type CellPhase = "serving" | "failing-over" | "awaiting-consent" | "promoting" | "switching-over";

/** A change to one cell. Fields left out stay as they are. */
export interface CellChange {
  /** The region whose instance becomes primary; the epoch is bumped with it. */
  readonly primary?: string;
  readonly fenced?: boolean;
  readonly commit?: "quorum" | "async";
  readonly phase?: CellPhase;
  /** The failover under way (null when none). */
  readonly failover?: Record<string, unknown> | null;
  /**
   * Bumps the desired version although agents have nothing new to act on: each probes its
   * databases and reports at once, under the new version (a switchover asks for positions so).
   */
  readonly reportNow?: boolean;
}

/** A finished failover or switchover, for the history. */
export interface FinishedFailover {
  readonly kind: string;
  readonly startedAtMs: number;
  readonly record: Record<string, unknown>;
}

/** A cell with its failover phase and the failover under way. */
export interface CellFailoverState {
  readonly cell: CellState;
  readonly phase: CellPhase;
  readonly failover: Record<string, unknown> | null;
}

export interface CellStoreHooks {
  desiredVersion(tx: Tx, bump: boolean): Promise<number>;
  insertEvents(tx: Tx, events: readonly NewEvent[]): Promise<WorldEvent[]>;
}

interface FailoverRow extends CellRow {
  phase: CellPhase;
  failover: Record<string, unknown> | null;
}

export class CellStore {
  readonly #db: ControlDatabase;
  readonly #clock: () => number;
  readonly #hooks: CellStoreHooks;

  constructor(db: ControlDatabase, clock: () => number, hooks: CellStoreHooks) {
    this.#db = db;
    this.#clock = clock;
    this.#hooks = hooks;
  }

  /** Every cell with its phase and failover under way, in cell order. */
  async states(): Promise<CellFailoverState[]> {
    const rows = await this.#db.query<FailoverRow>(
      `SELECT ${CELL_COLUMNS}, phase, failover FROM cells ORDER BY cell`,
    );
    return rows.map((r) => ({ cell: toCell(r), phase: r.phase, failover: r.failover }));
  }

  /**
   * Applies `change` to `cell` (undefined when there is no such cell), bumping the epoch with a new
   * primary and the desired version when agents must act; appends `events`, and `finished` to the
   * history, all in one transaction.
   */
  async update(
    cell: string,
    change: CellChange,
    events: readonly NewEvent[],
    finished?: FinishedFailover,
  ): Promise<{ state: CellFailoverState; desiredVersion: number; events: WorldEvent[] } | undefined> {
    return await this.#db.transaction(async (tx) => {
      const { client } = tx;
      const before = (
        await client.query<FailoverRow>(
          `SELECT ${CELL_COLUMNS}, phase, failover FROM cells WHERE cell = $1 FOR UPDATE`,
          [cell],
        )
      ).rows[0];
      if (!before) return undefined;
      const primary = change.primary ?? before.primary_region;
      const newPrimary = primary !== before.primary_region;
      const fenced = change.fenced ?? before.fenced;
      const commit = change.commit ?? before.commit_mode ?? "quorum";
      const agentsAct =
        newPrimary ||
        fenced !== before.fenced ||
        commit !== (before.commit_mode ?? "quorum") ||
        change.reportNow === true;
      const after = row(
        (
          await client.query<FailoverRow>(
            `UPDATE cells SET primary_region = $2, epoch = epoch + $3, fenced = $4, commit_mode = $5,
               phase = $6, failover = $7, updated_at = $8
             WHERE cell = $1 RETURNING ${CELL_COLUMNS}, phase, failover`,
            [
              cell,
              primary,
              newPrimary ? 1 : 0,
              fenced,
              commit,
              change.phase ?? before.phase,
              change.failover === undefined ? before.failover : change.failover,
              new Date(this.#clock()),
            ],
          )
        ).rows,
      );
      const desiredVersion = await this.#hooks.desiredVersion(tx, agentsAct);
      if (finished) {
        await client.query(
          "INSERT INTO failovers (cell, kind, started_at, finished_at, record) VALUES ($1, $2, $3, $4, $5)",
          [cell, finished.kind, new Date(finished.startedAtMs), new Date(this.#clock()), finished.record],
        );
      }
      const appended = await this.#hooks.insertEvents(
        tx,
        events.map((e) => ({ ...e, data: { ...e.data, desiredVersion } })),
      );
      return {
        state: { cell: toCell(after), phase: after.phase, failover: after.failover },
        desiredVersion,
        events: appended,
      };
    });
  }

  /** Adds `patch` to the history record of the cell's failover that started at `startedAtMs`. */
  async annotate(cell: string, startedAtMs: number, patch: Record<string, unknown>): Promise<void> {
    await this.#db.query(
      "UPDATE failovers SET record = record || $3::jsonb WHERE cell = $1 AND started_at = $2",
      [cell, new Date(startedAtMs), JSON.stringify(patch)],
    );
  }

  /**
   * Consented failovers finished at or after `sinceMs` whose loss was not measured yet (no
   * `lossFound` in their record), oldest first: what the loss watch must go on watching.
   */
  async unmeasuredConsents(
    sinceMs: number,
  ): Promise<{ cell: string; finishedAtMs: number; record: Record<string, unknown> }[]> {
    const rows = await this.#db.query<{ cell: string; finished_at: Date; record: Record<string, unknown> }>(
      `SELECT cell, finished_at, record FROM failovers
       WHERE kind = 'consent' AND finished_at >= $1 AND NOT (record ? 'lossFound') ORDER BY id`,
      [new Date(sinceMs)],
    );
    return rows.map((r) => ({ cell: r.cell, finishedAtMs: r.finished_at.getTime(), record: r.record }));
  }

  /** Finished failovers of a cell (or all), newest first. */
  async history(
    cell: string | undefined,
    limit: number,
  ): Promise<
    { cell: string; kind: string; startedAt: string; finishedAt: string; record: Record<string, unknown> }[]
  > {
    const rows = await this.#db.query<{
      cell: string;
      kind: string;
      started_at: Date;
      finished_at: Date;
      record: Record<string, unknown>;
    }>(
      `SELECT cell, kind, started_at, finished_at, record FROM failovers
       WHERE $1::text IS NULL OR cell = $1 ORDER BY id DESC LIMIT $2`,
      [cell ?? null, limit],
    );
    return rows.map((r) => ({
      cell: r.cell,
      kind: r.kind,
      startedAt: r.started_at.toISOString(),
      finishedAt: r.finished_at.toISOString(),
      record: r.record,
    }));
  }
}
