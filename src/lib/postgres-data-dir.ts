/**
 * Data directories made from scratch or from another instance: a new primary with initdb, a
 * streaming standby with `pg_basebackup -R` (or, without pg_basebackup, with the low-level backup
 * API: `postgres-backup-api.ts`), and an old primary brought back to a new primary's
 * history with pg_rewind (what it wrote after the two diverged is undone).
 */
import { existsSync, renameSync, rmSync } from "node:fs";
import { join } from "node:path";
import { RingfenceError } from "./errors.js";
import { newSystemIdentifier, setSystemIdentifier } from "./pg-control.js";
import { cloneWithBackupApi } from "./postgres-backup-api.js";
import { makeOwnedDir, type PgBinaries, type RunAs, runAsAsync, runToolAsync } from "./postgres-binaries.js";
import { PG_SUPERUSER, queryOnce } from "./postgres-client.js";
import { stripPrimaryConninfo, writeHba, writeStandbySignal } from "./postgres-config.js";

/**
 * Creates a new cluster in `dataDir` (no-op when it exists), with 1 MiB WAL segments: a standby
 * (re)starts streaming at the beginning of the segment it is in, so each repoint or timeline switch
 * sends it again up to a segment of WAL it already has before anything new, and a switchover's first
 * commits wait for that. With 16 MiB segments that was up to 16 MiB, twice, over the WAN (0.5-1 s on
 * the emulated one); with 1 MiB, a few tens of ms.
 *
 * With `template` (a cluster `makeTemplate` made, never started) and pg_resetwal at hand, the
 * cluster is a copy of the template with its own system identifier (`pg-control.ts`) and its WAL
 * reset to carry it: ~50 ms instead of initdb's ~1 s of CPU, which a local world pays for every
 * cell primary on a machine busy starting everything else. Otherwise it runs initdb.
 *
 * Built in `DATADIR.partial` and renamed into place, so a creation cut short (the agent killed
 * meanwhile) is never taken for a cluster: the next call starts it over. Does not block the event
 * loop: an agent initialising one cell's primary keeps heartbeating and cloning others.
 */
export async function initPrimary(
  bin: PgBinaries,
  dataDir: string,
  runAs: RunAs | undefined,
  options: { template?: string } = {},
): Promise<"template" | "initdb" | undefined> {
  if (existsSync(join(dataDir, "PG_VERSION"))) return undefined;
  const partial = `${dataDir}.partial`;
  rmSync(partial, { recursive: true, force: true });
  makeOwnedDir(partial, runAs);
  const template = options.template;
  const how = template && bin.hasResetwal && existsSync(join(template, "PG_VERSION")) ? "template" : "initdb";
  if (how === "template") {
    await runAsAsync("cp", ["-a", `${template}/.`, `${partial}/`], runAs);
    setSystemIdentifier(partial, newSystemIdentifier());
    await runToolAsync(bin, "pg_resetwal", ["-D", partial], runAs);
  } else {
    await runInitdb(bin, partial, runAs);
  }
  renameSync(partial, dataDir);
  return how;
}

/**
 * Makes the template `initPrimary` copies new clusters from, with initdb, unless it exists. A
 * template is never started: its copies are clusters shut down cleanly, which pg_resetwal accepts.
 */
export async function makeTemplate(bin: PgBinaries, dir: string, runAs: RunAs | undefined): Promise<void> {
  if (existsSync(join(dir, "PG_VERSION"))) return;
  await initPrimary(bin, dir, runAs);
}

async function runInitdb(bin: PgBinaries, dataDir: string, runAs: RunAs | undefined): Promise<void> {
  await runToolAsync(
    bin,
    "initdb",
    [
      "-D",
      dataDir,
      "-U",
      PG_SUPERUSER,
      "--auth=trust",
      "-E",
      "UTF8",
      "--locale=C",
      "--no-sync",
      "--wal-segsize=1",
    ],
    runAs,
  );
  writeHba(dataDir);
}

/**
 * Creates a streaming standby of the primary at `host:port` in `dataDir` with `pg_basebackup -R`,
 * connecting as `applicationName` so that `synchronous_standby_names` can name it, without blocking
 * the event loop; removes a partial copy when it fails. Without pg_basebackup it copies with the
 * low-level backup API over an ordinary connection. No-op when the data directory exists.
 */
export async function cloneStandbyAsync(
  bin: PgBinaries,
  dataDir: string,
  runAs: RunAs | undefined,
  source: { host: string; port: number; applicationName: string },
  options: { timeoutMs?: number; signal?: AbortSignal } = {},
): Promise<void> {
  if (existsSync(join(dataDir, "PG_VERSION"))) return;
  // pg_basebackup wants an empty folder: what a failed copy left behind is of no use.
  rmSync(dataDir, { recursive: true, force: true });
  makeOwnedDir(dataDir, runAs);
  const conn = `host=${source.host} port=${source.port} user=${PG_SUPERUSER} application_name=${source.applicationName} connect_timeout=10`;
  try {
    if (!bin.hasBasebackup) {
      await cloneWithBackupApi(dataDir, runAs, source, options.signal ? { signal: options.signal } : {});
      writeHba(dataDir);
      return;
    }
    await runToolAsync(
      bin,
      "pg_basebackup",
      ["-D", dataDir, "-d", conn, "-R", "-X", "stream", "-c", "fast", "--no-sync"],
      runAs,
      { timeoutMs: options.timeoutMs ?? 300_000, ...(options.signal ? { signal: options.signal } : {}) },
    );
  } catch (err) {
    rmSync(dataDir, { recursive: true, force: true });
    throw err;
  }
  writeHba(dataDir);
  stripPrimaryConninfo(dataDir);
}

/** What `rewind` did. */
export interface RewindResult {
  /** False when pg_rewind found nothing to undo (the target never left the source's history). */
  readonly rewound: boolean;
  /**
   * Where the target's history left the source's: the WAL position and the timeline it was on
   * (pg_rewind's "servers diverged at WAL location X on timeline N"). Everything the target wrote
   * after it is gone. Undefined when pg_rewind did not say.
   */
  readonly divergedAt: { readonly lsn: string; readonly timeline: number } | undefined;
  /** pg_rewind's output (its last lines are worth showing an operator). */
  readonly output: string;
}

/** Reads pg_rewind's output: whether it rewound, and where the timelines diverged. */
export function parseRewindOutput(output: string): RewindResult {
  const diverged = /servers diverged at WAL location ([0-9A-Fa-f]+\/[0-9A-Fa-f]+) on timeline (\d+)/.exec(
    output,
  );
  return {
    rewound: !/no rewind required/.test(output),
    divergedAt: diverged ? { lsn: diverged[1] as string, timeline: Number(diverged[2]) } : undefined,
    output,
  };
}

/**
 * Rewinds the stopped instance in `dataDir` to the history of the running primary at `source` with
 * `pg_rewind --source-server`, so it can follow that primary as a standby: what it wrote after the
 * two diverged is undone. The target must be stopped; when it was not stopped cleanly, pg_rewind
 * (PostgreSQL 13 and later) runs crash recovery on it first, which refuses a `standby.signal`, so
 * that file is set aside meanwhile and put back after. Needs `wal_log_hints` (see `baseSettings`).
 * The source gets a CHECKPOINT first (see below). The caller writes `standby.signal` and
 * `primary_conninfo` before starting it.
 */
export async function rewind(
  bin: PgBinaries,
  dataDir: string,
  runAs: RunAs | undefined,
  source: { host: string; port: number },
  options: { timeoutMs?: number; signal?: AbortSignal } = {},
): Promise<RewindResult> {
  // PostgreSQL 15's pg_rewind reads the source's timeline from its control file, which a promotion
  // updates only at the next checkpoint: without one it would find "no rewind required" on a target
  // that did diverge.
  try {
    await queryOnce(source.host, source.port, "CHECKPOINT");
  } catch (err) {
    throw new RingfenceError(
      "RINGFENCE_PG_FAILED",
      `pg_rewind not started: could not connect to the source ${source.host}:${source.port} for a CHECKPOINT: ${(err as Error).message}`,
      { cause: err },
    );
  }
  const signalFile = join(dataDir, "standby.signal");
  const hadSignal = existsSync(signalFile);
  if (hadSignal) rmSync(signalFile);
  try {
    const output = await runToolAsync(
      bin,
      "pg_rewind",
      [
        `--target-pgdata=${dataDir}`,
        `--source-server=host=${source.host} port=${source.port} user=${PG_SUPERUSER} dbname=postgres connect_timeout=10`,
      ],
      runAs,
      { timeoutMs: options.timeoutMs ?? 300_000, ...(options.signal ? { signal: options.signal } : {}) },
    );
    return parseRewindOutput(output);
  } finally {
    if (hadSignal) writeStandbySignal(dataDir, runAs);
  }
}
