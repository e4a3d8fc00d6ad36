/**
 * What a previous run of a zone's agent left behind: SIGKILLed, it could not stop its children, and
 * they live on, holding ports and data directories. Each run records the pids of its service
 * instances in `pids.json` (PostgreSQL records its own in each data directory's `postmaster.pid`),
 * and the next run kills those process trees before it starts anything.
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { processTree } from "../lib/proctree.js";

/**
 * Kills the process trees of the pids `pidsFile` lists and of the postmasters whose lock files are
 * in `dataDirs`, so that a new run starts from a clean slate. `onKilled` hears of each pid killed.
 */
export function killOrphans(
  pidsFile: string,
  dataDirs: readonly string[],
  onKilled: (pid: number) => void,
): void {
  const pids: number[] = [];
  if (existsSync(pidsFile)) {
    try {
      pids.push(...(JSON.parse(readFileSync(pidsFile, "utf8")) as number[]));
    } catch {
      // ignore a torn file
    }
  }
  for (const dataDir of dataDirs) {
    const lock = join(dataDir, "postmaster.pid");
    try {
      const pid = Number(readFileSync(lock, "utf8").split("\n")[0]);
      if (pid > 0) pids.push(pid);
    } catch {
      // no lock file, or not readable: nothing left behind
    }
  }
  for (const pid of pids) {
    if (!alive(pid)) continue;
    const tree = processTree(pid);
    for (const p of tree) {
      try {
        process.kill(p, "SIGCONT");
        process.kill(p, "SIGKILL");
      } catch {
        // gone
      }
    }
    onKilled(pid);
  }
}

/** Writes `pids` to `pidsFile` for the next run to kill, should this one be SIGKILLed. Best effort. */
export function recordPids(pidsFile: string, pids: readonly number[]): void {
  try {
    writeFileSync(pidsFile, JSON.stringify(pids));
  } catch {
    // best effort
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
