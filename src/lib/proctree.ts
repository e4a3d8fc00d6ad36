/**
 * Signalling a process with all its descendants. PostgreSQL puts each backend in a session of its
 * own, so a process group does not reach them: the tree is read from /proc instead (Linux).
 */
import { readdirSync, readFileSync } from "node:fs";

/** The parent pid of every live process, read from /proc. */
function parents(): Map<number, number> {
  const result = new Map<number, number>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      // Fields after the command (which may hold spaces and parentheses) start after the last ')'.
      const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      result.set(Number(entry), Number(rest[1]));
    } catch {
      // the process ended while we looked
    }
  }
  return result;
}

/** `pid` and every process below it, parents before children. */
export function processTree(pid: number): number[] {
  const ppid = parents();
  const children = new Map<number, number[]>();
  for (const [child, parent] of ppid) children.set(parent, [...(children.get(parent) ?? []), child]);
  const out: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    const p = queue.shift() as number;
    out.push(p);
    queue.push(...(children.get(p) ?? []));
  }
  return out;
}

/**
 * Sends `signal` to `pid` and all its descendants. SIGSTOP stops parents first so they cannot fork
 * replacements; SIGCONT resumes children first. Returns how many processes were signalled.
 */
export function signalTree(pid: number, signal: NodeJS.Signals): number {
  const tree = processTree(pid);
  const order = signal === "SIGCONT" ? [...tree].reverse() : tree;
  let sent = 0;
  for (const p of order) {
    try {
      process.kill(p, signal);
      sent++;
    } catch {
      // already gone
    }
  }
  return sent;
}
