/**
 * The world's state when a controller starts: on the first start against a database, the initial
 * state (every cell primary in its home region, epoch 1, not fenced; the default bucket table); on
 * later starts what is there, with the cells the topology gained. Concurrent starts take the schema
 * lock, so a fresh database is initialised once.
 */
import type { Topology } from "../topology/model.js";
import { defaultBucketTable } from "../topology/placement.js";
import { encodeBucketTable, type WorldEvent } from "../world/contracts.js";
import type { Tx } from "./database.js";
import { SCHEMA_LOCK } from "./migrations.js";
import { type NewEvent, row } from "./store-records.js";

export interface WorldInitHooks {
  insertEvents(tx: Tx, events: readonly NewEvent[]): Promise<WorldEvent[]>;
  /** Called after `tx` commits when it bumped the desired version. */
  readonly onDesiredChange: () => void;
}

/**
 * In `tx`: on the first start writes the initial state and records `world.initialised`; on later
 * starts adds the cells the topology gained (bumping the desired version when there are any) and
 * records `controller.started`. Returns whether this start initialised the world.
 */
export async function initialiseWorld(
  tx: Tx,
  topology: Topology,
  now: Date,
  hooks: WorldInitHooks,
): Promise<{ initialised: boolean }> {
  const { client } = tx;
  await client.query("SELECT pg_advisory_xact_lock($1)", [SCHEMA_LOCK]);
  const world = await client.query<{ topology: string }>("SELECT topology FROM world");
  const first = world.rows.length === 0;
  let added = 0;
  for (const cell of topology.cells.list) {
    const r = await client.query(
      `INSERT INTO cells (cell, primary_region, epoch, fenced, updated_at) VALUES ($1, $2, 1, false, $3)
         ON CONFLICT (cell) DO NOTHING`,
      [cell.id, cell.home, now],
    );
    added += r.rowCount ?? 0;
  }
  if (first) {
    const runs = encodeBucketTable(defaultBucketTable(topology.cells.buckets, topology.cells.count));
    await client.query("INSERT INTO bucket_table (version, runs) VALUES (1, $1)", [JSON.stringify(runs)]);
    await client.query("INSERT INTO world (topology, desired_version, initialised_at) VALUES ($1, 1, $2)", [
      topology.name,
      now,
    ]);
    await hooks.insertEvents(tx, [
      {
        kind: "world.initialised",
        actor: "controller",
        subject: topology.name,
        message: `world ${topology.name} initialised: ${topology.cells.count} cells, ${topology.cells.buckets} buckets`,
        data: { topology: topology.name, source: topology.source, cells: topology.cells.count },
      },
    ]);
  } else {
    if (added > 0) {
      await client.query("UPDATE world SET desired_version = desired_version + 1");
      tx.afterCommit(hooks.onDesiredChange);
    }
    await hooks.insertEvents(tx, [
      {
        kind: "controller.started",
        actor: "controller",
        subject: topology.name,
        message: `controller started on existing state of world ${row(world.rows).topology}${added > 0 ? ` (${added} new cells)` : ""}`,
        data: {
          topology: topology.name,
          stored: row(world.rows).topology,
          cellsAdded: added,
          pid: process.pid,
        },
      },
    ]);
  }
  return { initialised: first };
}
