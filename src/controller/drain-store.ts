/**
 * Drains in the control database: regions, zones and instances taken out of routing by an
 * operator, at most one drain per target. Creating or removing one bumps the desired version and
 * appends its event in the same transaction.
 */
import type { Drain, DrainTarget, WorldEvent } from "../world/contracts.js";
import type { ControlDatabase, Tx } from "./database.js";
import { DRAIN_COLUMNS, type DrainCreation, type DrainRow, type NewEvent, toDrain } from "./store-records.js";

export interface DrainStoreHooks {
  desiredVersion(tx: Tx, bump: boolean): Promise<number>;
  insertEvents(tx: Tx, events: readonly NewEvent[]): Promise<WorldEvent[]>;
}

export class DrainStore {
  readonly #db: ControlDatabase;
  readonly #clock: () => number;
  readonly #hooks: DrainStoreHooks;

  constructor(db: ControlDatabase, clock: () => number, hooks: DrainStoreHooks) {
    this.#db = db;
    this.#clock = clock;
    this.#hooks = hooks;
  }

  /** Active drains, oldest first. */
  async list(): Promise<Drain[]> {
    const rows = await this.#db.query<DrainRow>(`SELECT ${DRAIN_COLUMNS} FROM drains ORDER BY n`);
    return rows.map(toDrain);
  }

  /**
   * Drains `target` as of now, bumps the desired version and appends the event `event(drain)` (its
   * data gains `drain`, `target` and `desiredVersion`). When the target is already drained nothing
   * changes and the drain in the way is returned (undefined if it went away meanwhile).
   */
  async create(
    target: DrainTarget,
    reason: string,
    event: (drain: Drain) => NewEvent,
  ): Promise<DrainCreation> {
    return await this.#db.transaction(async (tx): Promise<DrainCreation> => {
      const { client } = tx;
      // ON CONFLICT waits for a concurrent insert of the same target, so two racing requests
      // create one drain and the other learns which.
      const inserted = await client.query<DrainRow>(
        `INSERT INTO drains (kind, target, reason, created_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (kind, target) DO NOTHING RETURNING ${DRAIN_COLUMNS}`,
        [target.kind, target.id, reason, new Date(this.#clock())],
      );
      const created = inserted.rows[0];
      if (!created) {
        const existing = await client.query<DrainRow>(
          `SELECT ${DRAIN_COLUMNS} FROM drains WHERE kind = $1 AND target = $2`,
          [target.kind, target.id],
        );
        return { created: false, existing: existing.rows.map(toDrain)[0] };
      }
      const drain = toDrain(created);
      return { created: true, drain, ...(await this.#changed(tx, drain, event(drain))) };
    });
  }

  /**
   * Removes the drain `drain-<n>`, bumps the desired version and appends `event(drain)`. Undefined
   * when there is no such drain.
   */
  async remove(
    n: number,
    event: (drain: Drain) => NewEvent,
  ): Promise<{ drain: Drain; desiredVersion: number; event: WorldEvent } | undefined> {
    return await this.#db.transaction(async (tx) => {
      const deleted = await tx.client.query<DrainRow>(
        `DELETE FROM drains WHERE n = $1 RETURNING ${DRAIN_COLUMNS}`,
        [n],
      );
      const removed = deleted.rows[0];
      if (!removed) return undefined;
      const drain = toDrain(removed);
      return { drain, ...(await this.#changed(tx, drain, event(drain))) };
    });
  }

  async #changed(
    tx: Tx,
    drain: Drain,
    event: NewEvent,
  ): Promise<{ desiredVersion: number; event: WorldEvent }> {
    const desiredVersion = await this.#hooks.desiredVersion(tx, true);
    const [appended] = await this.#hooks.insertEvents(tx, [
      { ...event, data: { ...event.data, drain: drain.id, target: drain.target, desiredVersion } },
    ]);
    return { desiredVersion, event: appended as WorldEvent };
  }
}
