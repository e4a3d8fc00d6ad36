/**
 * PostgreSQL instances as child processes: finding the server binaries, creating a primary with
 * initdb or a streaming standby with pg_basebackup, writing ringfence's settings, and running the
 * server. PostgreSQL refuses to run as root, so when ringfence runs as root every tool and server is
 * started as the `postgres` system user and data directories are owned by it.
 *
 * This file runs the server; the rest lives beside it and is re-exported here: the binaries and the
 * user they run as (`postgres-binaries.ts`), connecting (`postgres-client.ts`), the files ringfence
 * writes into a data directory (`postgres-config.ts`), and making a data directory with initdb,
 * pg_basebackup or pg_rewind (`postgres-data-dir.ts`).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { chownSync, closeSync, openSync } from "node:fs";
import { join } from "node:path";
import type { PgBinaries, RunAs } from "./postgres-binaries.js";
import { signalTree } from "./proctree.js";

export {
  DEDICATED_PG_USER,
  describeRunAs,
  findPgBinaries,
  makeOwnedDir,
  type PgBinaries,
  pgRunAs,
  type RunAs,
  runAsAsync,
  runTool,
  runToolAsync,
  untraversableParent,
} from "./postgres-binaries.js";
export { PG_SUPERUSER, pgClient, queryOnce, waitReady } from "./postgres-client.js";
export {
  baseSettings,
  primaryConninfo,
  stripPrimaryConninfo,
  synchronousStandbyNames,
  writeSettings,
  writeStandbySignal,
} from "./postgres-config.js";
export {
  cloneStandbyAsync,
  initPrimary,
  makeTemplate,
  parseRewindOutput,
  type RewindResult,
  rewind,
} from "./postgres-data-dir.js";

/**
 * Starts `postgres -D dataDir` as a child process (as `runAs`), its output appended to `logFile`,
 * detached from our process group so that a Ctrl-C aimed at ringfence does not reach it directly.
 * The caller supervises it: SIGINT is a fast shutdown, SIGTERM a smart one, SIGQUIT an immediate one.
 */
export function spawnPostgres(
  bin: PgBinaries,
  dataDir: string,
  runAs: RunAs | undefined,
  logFile: string,
): ChildProcess {
  const log = openSync(logFile, "a");
  try {
    if (runAs) chownSync(logFile, runAs.uid, runAs.gid);
    return spawn(join(bin.bindir, "postgres"), ["-D", dataDir], {
      stdio: ["ignore", log, log],
      detached: true,
      ...(runAs ? { uid: runAs.uid, gid: runAs.gid } : {}),
      env: { ...process.env, LC_ALL: "C", ...(runAs ? { HOME: "/tmp" } : {}) },
    });
  } finally {
    closeSync(log); // the child has its own copy; ours would leak one per (re)start
  }
}

/**
 * Sends `signal` to an instance: its postmaster and every backend (each backend is in a session of
 * its own, so this walks the process tree). False when the instance is gone.
 */
export function signalGroup(child: ChildProcess, signal: NodeJS.Signals): boolean {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return false;
  return signalTree(child.pid, signal) > 0;
}
