/**
 * The controller's state in the control database (PostgreSQL, user `ringfence`). Every change to
 * cells, restart nonces, drains or the bucket table bumps `world.desired_version` in the same
 * transaction, so the desired-state version only ever grows and agents and routers can compare it
 * cheaply. Connection handling (and `RINGFENCE_CONTROL_DB_UNAVAILABLE`) lives in `database.ts`;
 * the schema in `migrations.ts`; the state a first start writes in `world-init.ts`; drains in
 * `drain-store.ts`; the event log in `event-log.ts`; cells as failover moves them in
 * `cell-store.ts`; router telemetry in `telemetry-store.ts`.
 */
import type { Topology } from "../topology/model.js";
import type { CellState, Drain, DrainTarget, RouterReport, WorldEvent } from "../world/contracts.js";
import { CellStore } from "./cell-store.js";
import { ControlDatabase, type DatabaseOptions, type Tx } from "./database.js";
import { DrainStore } from "./drain-store.js";
import { EventLog } from "./event-log.js";
import { migrate } from "./migrations.js";
import {
  type AgentReport,
  CELL_COLUMNS,
  type CellRow,
  type DesiredParts,
  DRAIN_COLUMNS,
  type DrainCreation,
  type DrainRow,
  type NewEvent,
  row,
  type Snapshot,
  toCell,
  toDrain,
} from "./store-records.js";
import { TelemetryStore } from "./telemetry-store.js";
import { initialiseWorld } from "./world-init.js";

export type {
  AgentRecord,
  AgentReport,
  BucketTableState,
  DesiredParts,
  DrainCreation,
  NewEvent,
  RouterRecord,
  Snapshot,
} from "./store-records.js";

export interface StoreOptions extends DatabaseOptions {
  readonly clock: () => number;
  /** Called after a transaction that appended events has committed (wakes live event streams). */
  readonly onAppend?: () => void;
  /** Called after a transaction that bumped the desired version has committed (wakes routing streams). */
  readonly onDesiredChange?: () => void;
}

export class Store {
  /** Router telemetry, on the same connection pool. */
  readonly telemetry: TelemetryStore;
  /** Cells as failover moves them, on the same connection pool. */
  readonly cells: CellStore;
  readonly #db: ControlDatabase;
  readonly #clock: () => number;
  readonly #onDesiredChange: () => void;
  readonly #events: EventLog;
  readonly #drains: DrainStore;

  private constructor(db: ControlDatabase, options: StoreOptions) {
    this.#db = db;
    this.#clock = options.clock;
    this.#onDesiredChange = options.onDesiredChange ?? (() => {});
    this.#events = new EventLog(db, options.clock, options.onAppend ?? (() => {}));
    const hooks = {
      desiredVersion: (tx: Tx, bump: boolean) => this.#desiredVersion(tx, bump),
      insertEvents: (tx: Tx, events: readonly NewEvent[]) => this.#insertEvents(tx, events),
    };
    this.telemetry = new TelemetryStore(db, options.clock);
    this.cells = new CellStore(db, options.clock, hooks);
    this.#drains = new DrainStore(db, options.clock, hooks);
  }

  /** Connects and applies pending migrations; fails with `RINGFENCE_CONTROL_DB_UNAVAILABLE`. */
  static async open(options: StoreOptions): Promise<Store> {
    const db = new ControlDatabase(options);
    try {
      await db.withClient((client) => migrate(client));
    } catch (err) {
      await db.close().catch(() => {});
      throw err;
    }
    return new Store(db, options);
  }

  /**
   * On the first start against this database, writes the world's initial state (every cell
   * primary in its home region, epoch 1, not fenced; the default bucket table) and records
   * `world.initialised`. On later starts keeps what is there, adds cells the topology gained, and
   * records `controller.started`. Returns whether this start initialised the world.
   */
  async initialise(topology: Topology): Promise<{ initialised: boolean }> {
    const now = new Date(this.#clock());
    return await this.#db.transaction(
      async (tx) =>
        await initialiseWorld(tx, topology, now, {
          insertEvents: (t, events) => this.#insertEvents(t, events),
          onDesiredChange: this.#onDesiredChange,
        }),
    );
  }

  /** Desired-state version, cells and restart nonces, read consistently. */
  async desired(): Promise<DesiredParts> {
    return await this.#db.transaction(async (tx) => await this.#readDesired(tx.client), "read");
  }

  /** Everything, read consistently. */
  async snapshot(): Promise<Snapshot> {
    return await this.#db.transaction(async (tx) => {
      const { client } = tx;
      const desired = await this.#readDesired(client);
      const bucket = row(
        (
          await client.query<{ version: number; runs: [number, number][] }>(
            "SELECT version, runs FROM bucket_table",
          )
        ).rows,
      );
      const agents = await client.query<{ zone: string; last_heartbeat: Date; report: AgentReport }>(
        "SELECT zone, last_heartbeat, report FROM agents ORDER BY zone",
      );
      const routers = await client.query<{ region: string; last_heartbeat: Date; report: RouterReport }>(
        "SELECT region, last_heartbeat, report FROM routers ORDER BY region",
      );
      const drains = await client.query<DrainRow>(`SELECT ${DRAIN_COLUMNS} FROM drains ORDER BY n`);
      return {
        ...desired,
        bucketTable: { version: bucket.version, runs: bucket.runs },
        agents: agents.rows.map((r) => ({
          zone: r.zone,
          lastHeartbeatMs: r.last_heartbeat.getTime(),
          report: r.report,
        })),
        routers: routers.rows.map((r) => ({
          region: r.region,
          lastHeartbeatMs: r.last_heartbeat.getTime(),
          report: r.report,
        })),
        drains: drains.rows.map(toDrain),
      };
    }, "read");
  }

  /**
   * Sets a cell's fenced flag, bumping the desired version when it changed, and appends `event`
   * (its data gains `changed` and `desiredVersion`). Undefined when the cell does not exist.
   */
  async setFenced(
    cell: string,
    fenced: boolean,
    event: NewEvent,
  ): Promise<{ cell: CellState; desiredVersion: number; changed: boolean; event: WorldEvent } | undefined> {
    return await this.#db.transaction(async (tx) => {
      const { client } = tx;
      const current = await client.query<CellRow>(
        `SELECT ${CELL_COLUMNS} FROM cells WHERE cell = $1 FOR UPDATE`,
        [cell],
      );
      const before = current.rows[0];
      if (!before) return undefined;
      const changed = before.fenced !== fenced;
      let state = before;
      if (changed) {
        state = row(
          (
            await client.query<CellRow>(
              `UPDATE cells SET fenced = $2, updated_at = $3 WHERE cell = $1
               RETURNING ${CELL_COLUMNS}`,
              [cell, fenced, new Date(this.#clock())],
            )
          ).rows,
        );
      }
      const desiredVersion = await this.#desiredVersion(tx, changed);
      const [appended] = await this.#insertEvents(tx, [
        { ...event, data: { ...event.data, changed, desiredVersion } },
      ]);
      return { cell: toCell(state), desiredVersion, changed, event: appended as WorldEvent };
    });
  }

  /** Bumps a process's restart nonce (from 0) and the desired version, and appends `event`. */
  async bumpRestart(
    processId: string,
    event: NewEvent,
  ): Promise<{ nonce: number; desiredVersion: number; event: WorldEvent }> {
    return await this.#db.transaction(async (tx) => {
      const { client } = tx;
      const { nonce } = row(
        (
          await client.query<{ nonce: number }>(
            `INSERT INTO restarts (process_id, nonce) VALUES ($1, 1)
             ON CONFLICT (process_id) DO UPDATE SET nonce = restarts.nonce + 1 RETURNING nonce`,
            [processId],
          )
        ).rows,
      );
      const desiredVersion = await this.#desiredVersion(tx, true);
      const [appended] = await this.#insertEvents(tx, [
        { ...event, data: { ...event.data, nonce, desiredVersion } },
      ]);
      return { nonce, desiredVersion, event: appended as WorldEvent };
    });
  }

  /**
   * The desired version and when each agent last reported: enough to tell cheaply whether the
   * routing table may have changed since it was built (a version bump, an agent falling silent).
   */
  async liveness(): Promise<{ desiredVersion: number; agents: { zone: string; lastHeartbeatMs: number }[] }> {
    const rows = await this.#db.query<{
      desired_version: string;
      zone: string | null;
      last_heartbeat: Date | null;
    }>(
      `SELECT w.desired_version, a.zone, a.last_heartbeat FROM world w LEFT JOIN agents a ON true ORDER BY a.zone`,
    );
    return {
      desiredVersion: Number(row(rows).desired_version),
      agents: rows.flatMap((r) =>
        r.zone === null || r.last_heartbeat === null
          ? []
          : [{ zone: r.zone, lastHeartbeatMs: r.last_heartbeat.getTime() }],
      ),
    };
  }

  /** Active drains, oldest first. */
  async drains(): Promise<Drain[]> {
    return await this.#drains.list();
  }

  /**
   * Drains `target` as of now, bumps the desired version and appends the event `event(drain)` (its
   * data gains `drain`, `target` and `desiredVersion`). When the target is already drained nothing
   * changes and the drain in the way is returned (undefined if it went away meanwhile).
   */
  async createDrain(
    target: DrainTarget,
    reason: string,
    event: (drain: Drain) => NewEvent,
  ): Promise<DrainCreation> {
    return await this.#drains.create(target, reason, event);
  }

  /**
   * Removes the drain `drain-<n>`, bumps the desired version and appends `event(drain)`. Undefined
   * when there is no such drain.
   */
  async removeDrain(
    n: number,
    event: (drain: Drain) => NewEvent,
  ): Promise<{ drain: Drain; desiredVersion: number; event: WorldEvent } | undefined> {
    return await this.#drains.remove(n, event);
  }

  /** Stores an agent's report as of now and appends its events to the log. */
  async recordAgentHeartbeat(zone: string, report: AgentReport, events: readonly NewEvent[]): Promise<void> {
    await this.#db.transaction(async (tx) => {
      const { client } = tx;
      await client.query(
        `INSERT INTO agents (zone, last_heartbeat, report) VALUES ($1, $2, $3)
         ON CONFLICT (zone) DO UPDATE SET last_heartbeat = EXCLUDED.last_heartbeat, report = EXCLUDED.report`,
        [zone, new Date(this.#clock()), JSON.stringify(report)],
      );
      if (events.length > 0) await this.#insertEvents(tx, events);
    });
  }

  /** Stores a router's report as of now. */
  async recordRouterHeartbeat(region: string, report: RouterReport): Promise<void> {
    await this.#db.query(
      `INSERT INTO routers (region, last_heartbeat, report) VALUES ($1, $2, $3)
       ON CONFLICT (region) DO UPDATE SET last_heartbeat = EXCLUDED.last_heartbeat, report = EXCLUDED.report`,
      [region, new Date(this.#clock()), JSON.stringify(report)],
    );
  }

  /** Appends one event. */
  async appendEvent(event: NewEvent): Promise<WorldEvent> {
    return await this.#events.append(event);
  }

  /** Up to `limit` events with id greater than `after`, ascending. */
  async events(after: number, limit: number): Promise<WorldEvent[]> {
    return await this.#events.after(after, limit);
  }

  /** The last `count` events, ascending. */
  async tail(count: number): Promise<WorldEvent[]> {
    return await this.#events.tail(count);
  }

  /** The id of the newest event, 0 when there is none. */
  async lastEventId(): Promise<number> {
    return await this.#events.lastId();
  }

  /** Closes every connection. */
  async close(): Promise<void> {
    await this.#db.close();
  }

  async #readDesired(client: Tx["client"]): Promise<DesiredParts> {
    const version = row(
      (await client.query<{ desired_version: string }>("SELECT desired_version FROM world")).rows,
    );
    const cells = await client.query<CellRow>(`SELECT ${CELL_COLUMNS} FROM cells ORDER BY cell`);
    const restarts = await client.query<{ process_id: string; nonce: number }>(
      "SELECT process_id, nonce FROM restarts",
    );
    return {
      desiredVersion: Number(version.desired_version),
      cells: cells.rows.map(toCell),
      restarts: Object.fromEntries(restarts.rows.map((r) => [r.process_id, r.nonce])),
    };
  }

  async #desiredVersion(tx: Tx, bump: boolean): Promise<number> {
    const sql = bump
      ? "UPDATE world SET desired_version = desired_version + 1 RETURNING desired_version"
      : "SELECT desired_version FROM world";
    if (bump) tx.afterCommit(this.#onDesiredChange);
    return Number(row((await tx.client.query<{ desired_version: string }>(sql)).rows).desired_version);
  }

  async #insertEvents(tx: Tx, events: readonly NewEvent[]): Promise<WorldEvent[]> {
    return await this.#events.insert(tx, events);
  }
}
