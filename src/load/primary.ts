/**
 * The audit's direct read of a cell's current primary: PostgreSQL, as the ringfence superuser on
 * loopback, one query per batch. Which region holds the primary is asked of the controller, again
 * after a failed read (a failover may have moved it while the audit ran).
 */
import { queryOnce } from "../lib/postgres.js";
import type { DatabaseSlot } from "../world/layout.js";
import { type PrimaryReader, type StoredUser, writeKey } from "./audit.js";

/** Pairs of (tenant, id) joined against `users`: exact matches only, one round trip. */
export const PRIMARY_QUERY = `SELECT u.tenant, u.id, u.name, u.email
  FROM users u
  JOIN unnest($1::text[], $2::text[]) AS k(tenant, id) ON u.tenant = k.tenant AND u.id = k.id`;

/** PostgreSQL's "relation does not exist": no write ever reached this cell, so nothing is there. */
const UNDEFINED_TABLE = "42P01";

export interface PostgresPrimaryOptions {
  readonly databases: readonly DatabaseSlot[];
  /** Each cell's current primary region (the controller's `GET /v1/state`). */
  readonly primaries: () => Promise<Map<string, string>>;
  /** Default `queryOnce` from lib/postgres. */
  readonly query?: (
    host: string,
    port: number,
    sql: string,
    params: unknown[],
  ) => Promise<Record<string, unknown>[]>;
}

/** Reads from the database slot of each cell's current primary region. */
export class PostgresPrimaryReader implements PrimaryReader {
  readonly #options: PostgresPrimaryOptions;
  #primaries: Promise<Map<string, string>> | undefined;

  constructor(options: PostgresPrimaryOptions) {
    this.#options = options;
  }

  async read(
    cell: string,
    keys: readonly { tenant: string; id: string }[],
  ): Promise<Map<string, StoredUser>> {
    try {
      return await this.#readOnce(cell, keys);
    } catch {
      this.#primaries = undefined; // ask the controller again: the primary may have moved
      return await this.#readOnce(cell, keys);
    }
  }

  async #readOnce(
    cell: string,
    keys: readonly { tenant: string; id: string }[],
  ): Promise<Map<string, StoredUser>> {
    this.#primaries ??= this.#options.primaries();
    const region = (await this.#primaries).get(cell);
    if (region === undefined) throw new Error(`the controller knows no cell ${cell}`);
    const slot = this.#options.databases.find((d) => d.cell === cell && d.region === region);
    if (!slot) throw new Error(`the layout has no database of ${cell} in ${region}`);
    const query = this.#options.query ?? queryOnce;
    let rows: Record<string, unknown>[];
    try {
      rows = await query(slot.host, slot.port, PRIMARY_QUERY, [
        keys.map((k) => k.tenant),
        keys.map((k) => k.id),
      ]);
    } catch (err) {
      if ((err as { code?: unknown }).code === UNDEFINED_TABLE) return new Map();
      throw new Error(
        `${cell}'s primary in ${region} (${slot.host}:${slot.port}): ${(err as Error).message}`,
      );
    }
    return new Map(
      rows.map((r) => [
        writeKey(String(r.tenant), String(r.id)),
        { name: String(r.name), email: String(r.email) },
      ]),
    );
  }
}
