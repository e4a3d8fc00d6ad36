/**
 * Child processes of the router benchmark: spawned pinned to a core, each in a process group of its
 * own, and all ended when the benchmark ends, fails or is interrupted (Ctrl-C), so no origin,
 * proxy or load generator outlives it.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { processTree } from "../lib/proctree.js";

/** Whether `taskset` can pin a process here (it may be missing, or forbidden in a container). */
export const HAS_TASKSET = spawnSync("taskset", ["-c", "0", "true"]).status === 0;
/** Whether `setpriv --pdeathsig` can have a child killed when this process dies, even by SIGKILL. */
const HAS_PDEATHSIG = spawnSync("setpriv", ["--pdeathsig", "KILL", "true"]).status === 0;
const HAS_PRLIMIT = spawnSync("prlimit", ["--version"]).status === 0;

/** The open-file limits of a process (this one by default), from /proc/<pid>/limits. */
export function fileLimits(pid: number | "self" = "self"): { soft: number; hard: number } {
  const m = /Max open files\s+(\d+|unlimited)\s+(\d+|unlimited)/.exec(
    readFileSync(`/proc/${pid}/limits`, "utf8"),
  );
  const value = (v: string | undefined) => (v === "unlimited" ? Number.MAX_SAFE_INTEGER : Number(v ?? 0));
  return { soft: value(m?.[1]), hard: value(m?.[2]) };
}

/**
 * The prlimit prefix that gives a child `nofile` open files: its hard limit is raised only where
 * this process may (CAP_SYS_RESOURCE), otherwise the soft limit goes up to the hard one at most.
 */
function nofilePrefix(nofile: number): string[] {
  const { soft, hard } = fileLimits();
  if (!HAS_PRLIMIT || nofile <= soft) return [];
  if (nofile > hard && spawnSync("prlimit", [`--nofile=${nofile}:${nofile}`, "true"]).status === 0) {
    return ["prlimit", `--nofile=${nofile}:${nofile}`];
  }
  return soft < hard ? ["prlimit", `--nofile=${Math.min(nofile, hard)}:${hard}`] : [];
}

/** Raises this process's soft open-file limit towards `nofile` (up to its hard limit); returns it. */
export function raiseOwnFileLimit(nofile: number): number {
  const prefix = nofilePrefix(nofile);
  if (prefix.length > 0) spawnSync("prlimit", ["--pid", String(process.pid), ...prefix.slice(1)]);
  return fileLimits().soft;
}

const live = new Set<ChildProcess>();

export interface SpawnOptions {
  /** The core to pin the process to with `taskset -c`; unpinned when taskset is unavailable. */
  readonly core?: number;
  /** Raise the process's open-file limit to this with prlimit, as far as allowed (see nofilePrefix). */
  readonly nofile?: number;
  /** Keep stdout for the caller to read (default: ignored). */
  readonly stdout?: boolean;
}

/**
 * Starts `argv` in a process group of its own (so its children end with it), killed by the kernel
 * if this process dies first (setpriv --pdeathsig, where available). stdin is a pipe that the
 * process may watch too: it closes when this process ends, however it ends.
 */
export function spawnChild(argv: readonly string[], options: SpawnOptions = {}): ChildProcess {
  const prefix: string[] = HAS_PDEATHSIG ? ["setpriv", "--pdeathsig", "KILL"] : [];
  if (options.nofile !== undefined) prefix.push(...nofilePrefix(options.nofile));
  if (options.core !== undefined && HAS_TASKSET) prefix.push("taskset", "-c", String(options.core));
  const full = [...prefix, ...argv];
  const child = spawn(full[0] as string, full.slice(1), {
    detached: true,
    stdio: ["pipe", options.stdout ? "pipe" : "ignore", "pipe"],
  });
  live.add(child);
  child.once("exit", () => live.delete(child));
  child.stdin?.on("error", () => {}); // EPIPE when the child has gone
  return child;
}

/** The child's stderr so far, for error messages (the last 2,000 characters). */
export function collectStderr(child: ChildProcess): () => string {
  let text = "";
  child.stderr?.setEncoding("utf8");
  child.stderr?.on("data", (chunk: string) => {
    text = (text + chunk).slice(-2000);
  });
  return () => text.trim();
}

/** The first stdout line that matches `pattern`, or an error when the child exits or time runs out. */
export async function waitForLine(
  child: ChildProcess,
  pattern: RegExp,
  what: string,
  stderr: () => string,
  timeoutMs = 20_000,
): Promise<RegExpExecArray> {
  const stdout = child.stdout;
  if (!stdout) throw new Error(`${what}: stdout is not piped`);
  const lines = createInterface({ input: stdout });
  try {
    return await new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`${what} did not start in ${timeoutMs} ms: ${stderr()}`)),
        timeoutMs,
      );
      lines.on("line", (line) => {
        const match = pattern.exec(line);
        if (match) {
          clearTimeout(timer);
          resolve(match);
        }
      });
      child.once("exit", (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`${what} exited (${signal ?? code}) before it was ready: ${stderr()}`));
      });
    });
  } finally {
    lines.close();
  }
}

function signalGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // the group has gone
  }
}

/** Ends a child and its group: SIGTERM, then SIGKILL after `graceMs`. */
export async function stopChild(child: ChildProcess, graceMs = 3_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) {
    live.delete(child);
    signalGroup(child, "SIGKILL"); // anything it left behind in its group
    return;
  }
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  signalGroup(child, "SIGTERM");
  const timer = setTimeout(() => signalGroup(child, "SIGKILL"), graceMs);
  await exited;
  clearTimeout(timer);
  signalGroup(child, "SIGKILL");
  live.delete(child);
}

const tempDirs = new Set<string>();

/** A new temporary folder, removed by `removeTempDir` or when this process exits. */
export function makeTempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.add(dir);
  return dir;
}

export function removeTempDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  tempDirs.delete(dir);
}

/** Kills every child still running and removes the temporary folders, synchronously (for exit and signal handlers). */
export function killAll(): void {
  for (const child of live) signalGroup(child, "SIGKILL");
  live.clear();
  for (const dir of tempDirs) removeTempDir(dir);
}

/** Ends every child when this process exits, is interrupted or is terminated. */
export function installCleanup(): void {
  process.once("exit", killAll);
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.once(signal, () => {
      console.error(`\n${signal}: stopping every process the benchmark started`);
      killAll();
      process.exit(130);
    });
  }
}

/** Resident memory of a process and its descendants, in KiB (VmRSS from /proc/<pid>/status). */
export function residentKiB(pid: number): number {
  let total = 0;
  for (const p of processTree(pid)) {
    try {
      total += Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${p}/status`, "utf8"))?.[1] ?? 0);
    } catch {
      // the process ended
    }
  }
  return total;
}

const CLOCK_TICKS = Number(spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).stdout.trim()) || 100;

/** CPU seconds (user + system) used so far by a process and its descendants. */
export function cpuSeconds(pid: number): number {
  let ticks = 0;
  for (const p of processTree(pid)) {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, "utf8");
      const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      ticks += Number(rest[11]) + Number(rest[12]); // utime, stime (fields 14 and 15)
    } catch {
      // the process ended
    }
  }
  return ticks / CLOCK_TICKS;
}

/** Busy and total jiffies of each core, from /proc/stat. */
export function coreTimes(): { busy: number; total: number }[] {
  const out: { busy: number; total: number }[] = [];
  for (const line of readFileSync("/proc/stat", "utf8").split("\n")) {
    const m = /^cpu(\d+)\s+(.*)$/.exec(line);
    if (!m) continue;
    const f = (m[2] as string).split(/\s+/).map(Number);
    const idle = (f[3] ?? 0) + (f[4] ?? 0); // idle + iowait
    const total = f.slice(0, 8).reduce((a, b) => a + b, 0); // without guest time, already in user
    out[Number(m[1])] = { busy: total - idle, total };
  }
  return out;
}
