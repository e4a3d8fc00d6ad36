/**
 * Connecting to an instance as the ringfence superuser: one client, a wait until it accepts
 * queries, and one query on a fresh connection. Every instance trusts that user on loopback only.
 */
import pg from "pg";
import { RingfenceError } from "./errors.js";

/** The superuser ringfence creates in every instance (trusted on loopback only). */
export const PG_SUPERUSER = "ringfence";

/** Opens a client to an instance as the ringfence superuser. */
export function pgClient(
  host: string,
  port: number,
  database = "postgres",
  extra: Partial<pg.ClientConfig> = {},
): pg.Client {
  return new pg.Client({
    host,
    port,
    user: PG_SUPERUSER,
    database,
    connectionTimeoutMillis: 2_000,
    ...extra,
  });
}

/**
 * Waits until the instance accepts queries, or throws after `timeoutMs`; when `signal` aborts,
 * rejects with its reason at the next attempt.
 */
export async function waitReady(
  host: string,
  port: number,
  timeoutMs = 30_000,
  signal?: AbortSignal,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    signal?.throwIfAborted();
    const client = pgClient(host, port);
    try {
      await client.connect();
      await client.query("SELECT 1");
      return;
    } catch (err) {
      last = err;
      await new Promise((r) => setTimeout(r, 100));
    } finally {
      await client.end().catch(() => {});
    }
  }
  throw new RingfenceError(
    "RINGFENCE_PG_FAILED",
    `PostgreSQL at ${host}:${port} not ready after ${timeoutMs} ms: ${(last as Error)?.message ?? "no answer"}`,
  );
}

/** Runs one query on a fresh connection and closes it. */
export async function queryOnce<T extends pg.QueryResultRow = pg.QueryResultRow>(
  host: string,
  port: number,
  sql: string,
  params: unknown[] = [],
  database = "postgres",
): Promise<T[]> {
  const client = pgClient(host, port, database);
  await client.connect();
  try {
    return (await client.query<T>(sql, params)).rows;
  } finally {
    await client.end().catch(() => {});
  }
}
