/**
 * The event log in the control database: what happened to the world, in order. Appends take a lock
 * so that ids become visible in the order they were given; readers follow the log by id (after an
 * id, or its last few) and never skip one. Each append wakes live event streams once it commits.
 */
import type { WorldEvent } from "../world/contracts.js";
import type { ControlDatabase, Tx } from "./database.js";
import { type EventRow, type NewEvent, toEvent } from "./store-records.js";

/** Serialises appends to the event log, so ids become visible in order and a reader never skips one. */
const EVENTS_LOCK = 7_070_002;

export class EventLog {
  readonly #db: ControlDatabase;
  readonly #clock: () => number;
  readonly #onAppend: () => void;

  constructor(db: ControlDatabase, clock: () => number, onAppend: () => void) {
    this.#db = db;
    this.#clock = clock;
    this.#onAppend = onAppend;
  }

  /** Appends one event. */
  async append(event: NewEvent): Promise<WorldEvent> {
    const [appended] = await this.#db.transaction((tx) => this.insert(tx, [event]));
    return appended as WorldEvent;
  }

  /** Up to `limit` events with id greater than `after`, ascending. */
  async after(after: number, limit: number): Promise<WorldEvent[]> {
    const rows = await this.#db.query<EventRow>(
      "SELECT id, at, kind, actor, subject, message, data FROM events WHERE id > $1 ORDER BY id LIMIT $2",
      [after, limit],
    );
    return rows.map(toEvent);
  }

  /** The last `count` events, ascending. */
  async tail(count: number): Promise<WorldEvent[]> {
    const rows = await this.#db.query<EventRow>(
      `SELECT * FROM (SELECT id, at, kind, actor, subject, message, data FROM events ORDER BY id DESC LIMIT $1) t
       ORDER BY id`,
      [count],
    );
    return rows.map(toEvent);
  }

  /** The id of the newest event, 0 when there is none. */
  async lastId(): Promise<number> {
    const rows = await this.#db.query<{ id: string | null }>("SELECT max(id) AS id FROM events");
    return Number(rows[0]?.id ?? 0);
  }

  /** Appends `events` in `tx`, in the order given; live streams wake once `tx` commits. */
  async insert(tx: Tx, events: readonly NewEvent[]): Promise<WorldEvent[]> {
    const { client } = tx;
    await client.query("SELECT pg_advisory_xact_lock($1)", [EVENTS_LOCK]);
    const now = this.#clock();
    const rows = await client.query<EventRow>(
      `INSERT INTO events (at, kind, actor, subject, message, data)
       SELECT (e->>'at')::timestamptz, e->>'kind', e->>'actor', e->>'subject', e->>'message', e->'data'
       FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS t(e, n)
       ORDER BY n -- ids follow the order the events were given in
       RETURNING id, at, kind, actor, subject, message, data`,
      [
        JSON.stringify(
          events.map((e) => ({
            at: new Date(e.at ?? now).toISOString(),
            kind: e.kind,
            actor: e.actor,
            subject: e.subject,
            message: e.message,
            data: e.data ?? {},
          })),
        ),
      ],
    );
    tx.afterCommit(this.#onAppend);
    return rows.rows.map(toEvent).sort((a, b) => a.id - b.id);
  }
}
