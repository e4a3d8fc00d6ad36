/**
 * The first start of a local world seeds every cell's databases before any of them runs: one new
 * cluster per cell (`initPrimary`, a copy of the world's template, started and stopped once), then
 * a cold copy of it for each of the cell's other instances, with `standby.signal`. A copy of a cluster shut down cleanly is a
 * valid base backup, so each standby starts streaming from its primary's first WAL record, with
 * nothing to catch up.
 *
 * Without it each standby waits for its primary to start and then copies it with pg_basebackup
 * through the emulated WAN: on 2 cores, busy starting everything else, that was 3-6 s per standby
 * on the start's critical path. Only a new world does this, and only because all its data
 * directories are on one disk: a cell the topology gains later, a standby re-cloned after a
 * failover, and agents on separate hosts copy from the running primary as before (`agent/database.ts`).
 */
import { chownSync, existsSync, mkdtempSync, renameSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  initPrimary,
  makeOwnedDir,
  type PgBinaries,
  type RunAs,
  runAsAsync,
  runToolAsync,
} from "../lib/postgres.js";
import { baseSettings, writeSettings, writeStandbySignal } from "../lib/postgres-config.js";
import type { Topology } from "../topology/model.js";
import type { DatabaseSlot, Layout } from "./layout.js";

export interface SeedOptions {
  readonly bin: PgBinaries;
  readonly runAs: RunAs | undefined;
  /** The data directory of a database slot (`dataDirOf`). */
  readonly dataDir: (slot: DatabaseSlot) => string;
  /** The cluster new primaries are copied from, when there is one (`pgTemplateDir`). */
  readonly template?: string;
}

/** What `seedCells` did for each cell: the instance it made, and those it copied it to. */
export interface SeededCell {
  readonly cell: string;
  readonly primary: string;
  readonly standbys: readonly string[];
}

/**
 * Seeds each cell of which no instance has a data directory yet; a cell with any data is left to
 * its agents. The cells are seeded in parallel.
 */
export async function seedCells(
  topology: Topology,
  layout: Layout,
  options: SeedOptions,
): Promise<SeededCell[]> {
  const seeded = await Promise.all(
    topology.cells.list.map(async (cell): Promise<SeededCell | undefined> => {
      const slots = layout.databases.filter((d) => d.cell === cell.id);
      const primary = slots.find((d) => d.region === cell.home);
      if (!primary || slots.some((d) => existsSync(options.dataDir(d)))) return undefined;
      const source = options.dataDir(primary);
      await initPrimary(options.bin, source, options.runAs, {
        ...(options.template ? { template: options.template } : {}),
      });
      // The control file holds the settings the cluster last ran with, and a standby refuses WAL
      // from a primary that ran with more connections, senders or workers than it would allow, or
      // at `wal_level = minimal` (what pg_resetwal writes): one start and stop with the world's
      // settings makes the copies fit their instances.
      await cycleWithWorldSettings(options.bin, source, options.runAs);
      const standbys = slots.filter((d) => d !== primary);
      await Promise.all(standbys.map((d) => coldCopy(source, options.dataDir(d), options.runAs)));
      return { cell: cell.id, primary: primary.id, standbys: standbys.map((d) => d.id) };
    }),
  );
  return seeded.filter((s): s is SeededCell => s !== undefined);
}

/**
 * Starts the cluster in `dataDir` with the world's settings (`baseSettings`), reachable only on a
 * socket in a private folder, and stops it at once (fast shutdown: a shutdown checkpoint).
 */
async function cycleWithWorldSettings(
  bin: PgBinaries,
  dataDir: string,
  runAs: RunAs | undefined,
): Promise<void> {
  // Unix socket paths are short (~107 bytes): a private folder under the system's temp dir.
  const socketDir = mkdtempSync(join(tmpdir(), "ringfence-seed-"));
  try {
    if (runAs) chownSync(socketDir, runAs.uid, runAs.gid);
    // The world's settings: a standby refuses to start when its primary's WAL says the primary
    // allowed more connections, senders or workers than the standby would. The agent writes
    // them again, with the instance's own address, before the first real start.
    writeSettings(
      dataDir,
      { ...baseSettings("", 5432), unix_socket_directories: socketDir, synchronous_standby_names: "" },
      runAs,
    );
    const log = join(socketDir, "postgres.log");
    await runToolAsync(bin, "pg_ctl", ["-D", dataDir, "-l", log, "-w", "-t", "60", "start"], runAs);
    await runToolAsync(bin, "pg_ctl", ["-D", dataDir, "-m", "fast", "-w", "-t", "60", "stop"], runAs);
  } finally {
    rmSync(socketDir, { recursive: true, force: true });
  }
}

/** Copies the stopped cluster in `source` to `target` as a standby, built aside and renamed into place. */
async function coldCopy(source: string, target: string, runAs: RunAs | undefined): Promise<void> {
  const partial = `${target}.partial`;
  rmSync(partial, { recursive: true, force: true });
  makeOwnedDir(partial, runAs);
  await runAsAsync("cp", ["-a", `${source}/.`, `${partial}/`], runAs);
  writeStandbySignal(partial, runAs);
  if (!existsSync(join(partial, "PG_VERSION")))
    throw new Error(`the copy of ${source} in ${partial} is incomplete`);
  renameSync(partial, target);
}
