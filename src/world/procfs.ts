/**
 * What /proc says about a process (Linux): its parent, its start time, its arguments and its
 * environment. A pid alone names a process only while it lives; the kernel hands it out again
 * afterwards, so a pid read from a file is trusted only together with the start time it was
 * recorded with, or with arguments and environment that tie it to this world.
 */
import { readdirSync, readFileSync } from "node:fs";
import { setPriority } from "node:os";

export interface ProcInfo {
  readonly pid: number;
  readonly ppid: number;
  /** The process group it belongs to. */
  readonly pgid: number;
  /** One letter: R running, S sleeping, Z zombie (exited, not yet reaped), ... */
  readonly state: string;
  /** Clock ticks from boot to its start: with the pid, a name no other process will ever have. */
  readonly startTime: number;
  /** Its command line; empty for kernel threads and zombies. */
  readonly argv: readonly string[];
}

/** What /proc says about `pid`, or undefined when there is no such process (or no /proc). */
export function readProc(pid: number): ProcInfo | undefined {
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after the command (which may hold spaces and parentheses) start after the last ')'.
    const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    let argv: string[] = [];
    try {
      argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
      if (argv.at(-1) === "") argv.pop();
    } catch {
      // it ended between the two reads; the stat above is still what it was
    }
    return {
      pid,
      state: rest[0] ?? "?",
      ppid: Number(rest[1]),
      pgid: Number(rest[2]),
      startTime: Number(rest[19]),
      argv,
    };
  } catch {
    return undefined;
  }
}

/** Every process /proc lists now (zombies included). */
export function listProcs(): ProcInfo[] {
  let entries: string[];
  try {
    entries = readdirSync("/proc");
  } catch {
    return [];
  }
  const out: ProcInfo[] = [];
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    const info = readProc(Number(entry));
    if (info) out.push(info);
  }
  return out;
}

/**
 * The environment `pid` was started with, or undefined when it cannot be read (another user's
 * process, when we are not root). A process that rewrites its title (PostgreSQL backends) may have
 * overwritten it.
 */
export function environOf(pid: number): Map<string, string> | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/environ`, "utf8");
  } catch {
    return undefined;
  }
  const env = new Map<string, string>();
  for (const pair of text.split("\0")) {
    const eq = pair.indexOf("=");
    if (eq > 0) env.set(pair.slice(0, eq), pair.slice(eq + 1));
  }
  return env;
}

/** The start time of `pid`, or undefined when it does not run (a zombie counts as gone). */
export function startTimeOf(pid: number): number | undefined {
  const info = readProc(pid);
  return info && info.state !== "Z" ? info.startTime : undefined;
}

/**
 * Whether `pid` runs and is the process that was recorded with `startTime` (when given): a pid the
 * kernel handed to another process since is not alive in this sense. A zombie is not alive.
 */
export function isAlive(pid: number, startTime?: number): boolean {
  const now = startTimeOf(pid);
  if (now !== undefined) return startTime === undefined || now === startTime;
  if (readProc(pid) !== undefined) return false; // a zombie
  // No /proc entry: gone, or no /proc at all (then the signal 0 probe is all there is).
  try {
    process.kill(pid, 0);
    return !hasProcfs();
  } catch {
    return false;
  }
}

function hasProcfs(): boolean {
  try {
    readFileSync("/proc/self/stat");
    return true;
  } catch {
    return false;
  }
}

/** Sends `signal` to `pid`, ignoring a process that is already gone. True when it was sent. */
export function signalQuietly(pid: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(pid, signal);
    return true;
  } catch {
    return false;
  }
}

/** SIGKILLs `pid`, ignoring a process that is already gone. */
export function killQuietly(pid: number): void {
  signalQuietly(pid, "SIGKILL");
}

/** `pid` and every process below it in `procs` (a snapshot from {@link listProcs}), parents first. */
export function descendants(pid: number, procs: readonly ProcInfo[]): number[] {
  const children = new Map<number, number[]>();
  for (const p of procs) children.set(p.ppid, [...(children.get(p.ppid) ?? []), p.pid]);
  const out: number[] = [];
  const queue = [pid];
  const seen = new Set<number>();
  while (queue.length > 0) {
    const p = queue.shift() as number;
    if (seen.has(p)) continue;
    seen.add(p);
    out.push(p);
    queue.push(...(children.get(p) ?? []));
  }
  return out;
}

/** Sets the niceness of `pid`; quietly does nothing when it is gone or that is not allowed. */
export function reniceQuietly(pid: number, niceness: number): void {
  try {
    setPriority(pid, niceness);
  } catch {
    // gone already, or not allowed: it keeps the priority it has
  }
}
