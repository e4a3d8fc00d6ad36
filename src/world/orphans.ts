/**
 * The processes of a world whose supervisor is gone (SIGKILLed, crashed, its machine's OOM killer):
 * the controller, agents and routers it started, the service instances and cell databases the
 * agents started, and the control database. They live on, holding the world's loopback ports, until
 * something stops them. Found four ways, each of which ties a process to this state directory and
 * none of which trusts a bare pid:
 *
 * - ringfence roles whose command line names this state directory (`agent --state-dir DIR ...`);
 * - processes whose environment carries {@link WORLD_MARK} = DIR, which every process the supervisor
 *   starts gets and passes on to what it starts (service instances, cell databases);
 * - `processes.json` entries whose pid still runs with the recorded start time;
 * - postmasters named by a `postmaster.pid` under the world's PostgreSQL root whose command line
 *   runs that very data directory.
 *
 * Stopping them goes in the supervisor's order: the roles first (an agent stops its instances,
 * writer endpoints and databases, with a fast shutdown), then what is left (databases get a fast
 * shutdown, SIGINT), then SIGKILL for anything still there after the grace time.
 */
import { readdirSync, readFileSync } from "node:fs";
import { basename, join, resolve } from "node:path";
import { RingfenceError } from "../lib/errors.js";
import { readProcessRecord } from "./pid-files.js";
import {
  descendants,
  environOf,
  isAlive,
  killQuietly,
  listProcs,
  type ProcInfo,
  signalQuietly,
} from "./procfs.js";
import type { StateDir } from "./state.js";

/**
 * The environment variable that marks a process as part of the world in the state directory it
 * holds. ringfence reads no setting from it; it only tells `ringfence down` what to stop.
 */
export const WORLD_MARK = "RINGFENCE_WORLD_STATE_DIR";

export type WorldProcessKind =
  | "supervisor"
  | "router"
  | "agent"
  | "controller"
  | "instance"
  | "postgres"
  | "other";

/** A live process that belongs to a world. */
export interface WorldProcess {
  readonly pid: number;
  /** With the pid, what tells this process from a later one given the same pid. */
  readonly startTime: number;
  readonly kind: WorldProcessKind;
  /** What an operator reads: `agent r1/a`, `postgres cell-0-r1`, `instance directory/cell-0/r1/1`. */
  readonly label: string;
}

/** The order processes are listed (and roles stopped) in, as the supervisor stops them. */
const KIND_ORDER: readonly WorldProcessKind[] = [
  "supervisor",
  "router",
  "agent",
  "controller",
  "instance",
  "other",
  "postgres",
];

/** The roles that stop what they started when asked to stop. */
const ROLE_KINDS: ReadonlySet<WorldProcessKind> = new Set(["supervisor", "router", "agent", "controller"]);

const ROLE_COMMANDS: Readonly<Record<string, WorldProcessKind>> = {
  "world-supervisor": "supervisor",
  controller: "controller",
  agent: "agent",
  router: "router",
};

/**
 * Every live process of the world in `state`, except this process, listed in stopping order.
 * PostgreSQL backends are not listed: they belong to their postmaster.
 */
export function findWorldProcesses(state: StateDir): WorldProcess[] {
  const root = state.root;
  const procs = listProcs().filter((p) => p.state !== "Z" && p.pid !== process.pid);
  const found = new Map<number, WorldProcess>();
  const add = (p: ProcInfo, kind: WorldProcessKind, label: string) => {
    if (!found.has(p.pid)) found.set(p.pid, { pid: p.pid, startTime: p.startTime, kind, label });
  };
  for (const p of procs) {
    const role = roleOf(p.argv, root);
    if (role) {
      add(p, role.kind, role.label);
      continue;
    }
    const env = environOf(p.pid);
    if (env?.get(WORLD_MARK) !== root || isBackend(p)) continue;
    const dataDir = postmasterDataDir(p.argv);
    if (dataDir !== undefined) add(p, "postgres", `postgres ${basename(dataDir)}`);
    else if (env.has("RINGFENCE_INSTANCE")) add(p, "instance", `instance ${env.get("RINGFENCE_INSTANCE")}`);
    else
      add(
        p,
        "other",
        `${basename(p.argv[0] ?? "?")} (${env.get("RINGFENCE_ROLE") ?? "started by the world"})`,
      );
  }
  const byPid = new Map(procs.map((p) => [p.pid, p]));
  const record = readProcessRecord(state);
  for (const r of record ? [record.supervisor, ...record.processes] : []) {
    const p = byPid.get(r.pid);
    if (!p || r.startTime === null || p.startTime !== r.startTime) continue;
    add(p, ...recordedKind(r.role));
  }
  for (const { pid, dataDir } of postmasters(state)) {
    const p = byPid.get(pid);
    const runs = p && postmasterDataDir(p.argv);
    if (p && runs !== undefined && resolve(runs) === resolve(dataDir)) {
      add(p, "postgres", `postgres ${basename(dataDir)}`);
    }
  }
  return [...found.values()].sort(
    (a, b) =>
      KIND_ORDER.indexOf(a.kind) - KIND_ORDER.indexOf(b.kind) ||
      a.label.localeCompare(b.label) ||
      a.pid - b.pid,
  );
}

/** The role a ringfence command line runs for the world in `root`, if it does. */
function roleOf(
  argv: readonly string[],
  root: string,
): { kind: WorldProcessKind; label: string } | undefined {
  // `node [V8 flags] main.js ROLE ...`: the role is the first argument after the script, which is
  // the first argument after node's own flags (lib/node-flags.ts).
  const script = argv.findIndex((a, i) => i > 0 && !a.startsWith("-"));
  const command = script < 0 ? -1 : script + 1;
  if (
    command < 1 ||
    !Object.hasOwn(ROLE_COMMANDS, argv[command] ?? "") ||
    optionValue(argv, "--state-dir") !== root
  ) {
    return undefined;
  }
  const kind = ROLE_COMMANDS[argv[command] as string] as WorldProcessKind;
  if (kind === "agent") return { kind, label: `agent ${optionValue(argv, "--zone") ?? "?"}` };
  if (kind === "router") return { kind, label: `router ${optionValue(argv, "--region") ?? "?"}` };
  return { kind, label: kind };
}

function optionValue(argv: readonly string[], name: string): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === name) return argv[i + 1];
    if (arg.startsWith(`${name}=`)) return arg.slice(name.length + 1);
  }
  return undefined;
}

/** The data directory of a postmaster's command line (`.../postgres -D DIR`), if it is one. */
function postmasterDataDir(argv: readonly string[]): string | undefined {
  const program = basename(argv[0] ?? "");
  if (program !== "postgres" && program !== "postmaster") return undefined;
  return optionValue(argv, "-D");
}

/** A PostgreSQL backend or auxiliary process: it rewrites its title to `postgres: ...`. */
function isBackend(p: ProcInfo): boolean {
  return (p.argv[0] ?? "").startsWith("postgres:");
}

function recordedKind(role: string): [WorldProcessKind, string] {
  if (role === "control-database") return ["postgres", "postgres control"];
  const [head, rest] = role.split(/:(.*)/s) as [string, string | undefined];
  const kind = (KIND_ORDER as readonly string[]).includes(head) ? (head as WorldProcessKind) : "other";
  return [kind, rest ? `${head} ${rest}` : head];
}

/** The pid each data directory's `postmaster.pid` names, under the world's PostgreSQL root. */
function postmasters(state: StateDir): { pid: number; dataDir: string }[] {
  let pgRoot: string;
  try {
    pgRoot = state.readConfig().pgRoot;
  } catch {
    return [];
  }
  let entries: string[];
  try {
    entries = readdirSync(pgRoot);
  } catch {
    return [];
  }
  const out: { pid: number; dataDir: string }[] = [];
  for (const entry of entries) {
    const dataDir = join(pgRoot, entry);
    try {
      const [pid, dir] = readFileSync(join(dataDir, "postmaster.pid"), "utf8").split("\n");
      if (/^\d+$/.test(pid ?? "") && resolve(dir ?? "") === resolve(dataDir)) {
        out.push({ pid: Number(pid), dataDir });
      }
    } catch {
      // not a data directory, or not running
    }
  }
  return out;
}

/** How `ringfence down` went for a world whose supervisor was gone. */
export interface OrphanReport {
  /** Every process that was found and is gone now, in stopping order. */
  readonly stopped: readonly WorldProcess[];
  /** Those of them that ignored SIGTERM/SIGINT for the grace time and were SIGKILLed. */
  readonly killed: readonly WorldProcess[];
  /** Those still running at the end (not ours to signal, or stuck in the kernel). */
  readonly survivors: readonly WorldProcess[];
}

export interface StopOrphansOptions {
  /** How long each graceful step may take before the next. Default 10 s. */
  readonly graceMs?: number;
  readonly progress?: (line: string) => void;
}

/**
 * Stops every process of the world in `state` (see the module comment for the order). Meant for a
 * world whose supervisor is gone; with a live supervisor, stop that instead and let it stop the rest.
 */
export async function stopOrphans(state: StateDir, options: StopOrphansOptions = {}): Promise<OrphanReport> {
  const graceMs = options.graceMs ?? 10_000;
  const seen = new Map<string, WorldProcess>();
  const look = () => {
    const found = findWorldProcesses(state);
    for (const p of found) seen.set(`${p.pid}@${p.startTime}`, p);
    return found;
  };
  const first = look();
  if (first.length === 0) return { stopped: [], killed: [], survivors: [] };
  options.progress?.(
    `stopping ${plural(first.length, "process", "processes")} of the world in ${state.root}`,
  );

  const roles = first.filter((p) => ROLE_KINDS.has(p.kind));
  if (roles.length > 0) {
    options.progress?.(`asking ${roles.map((p) => p.label).join(", ")} to stop (SIGTERM)`);
    for (const p of roles) {
      signalQuietly(p.pid, "SIGCONT"); // a paused process cannot act on the stop signal
      signalQuietly(p.pid, "SIGTERM");
    }
    await waitGone(roles, graceMs);
  }

  const rest = look();
  if (rest.length > 0) {
    options.progress?.(
      `stopping ${rest.map((p) => p.label).join(", ")} (SIGINT, a fast shutdown, to databases; SIGTERM to others)`,
    );
    for (const p of rest) {
      signalQuietly(p.pid, "SIGCONT");
      signalQuietly(p.pid, p.kind === "postgres" ? "SIGINT" : "SIGTERM");
    }
    await waitGone(rest, graceMs);
  }

  const stuck = look();
  if (stuck.length > 0) {
    options.progress?.(
      `SIGKILL to ${stuck.map((p) => p.label).join(", ")}, still running after ${graceMs} ms`,
    );
    const procs = listProcs();
    for (const p of stuck) for (const pid of descendants(p.pid, procs)) killQuietly(pid);
    await waitGone(stuck, 5_000);
  }

  const survivors = findWorldProcesses(state);
  const left = new Set(survivors.map((p) => `${p.pid}@${p.startTime}`));
  const stopped = [...seen.entries()].filter(([key]) => !left.has(key)).map(([, p]) => p);
  const order = (a: WorldProcess, b: WorldProcess) =>
    KIND_ORDER.indexOf(a.kind) - KIND_ORDER.indexOf(b.kind) ||
    a.label.localeCompare(b.label) ||
    a.pid - b.pid;
  stopped.sort(order);
  return { stopped, killed: stuck.filter((p) => !left.has(`${p.pid}@${p.startTime}`)), survivors };
}

async function waitGone(processes: readonly WorldProcess[], timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (processes.some((p) => isAlive(p.pid, p.startTime)) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** `label (pid N)` for each process, the first `max` of them and how many more. */
export function describeProcesses(
  processes: readonly WorldProcess[],
  max = Number.POSITIVE_INFINITY,
): string {
  const shown = processes.slice(0, max).map((p) => `${p.label} (pid ${p.pid})`);
  const more = processes.length - shown.length;
  return more > 0 ? `${shown.join(", ")} and ${more} more` : shown.join(", ");
}

/**
 * Throws `RINGFENCE_WORLD_ORPHANS` when processes of an earlier run of the world in `state` still
 * run: a new world would fight them for its addresses and data directories. `up` refuses rather
 * than kills them, as stopping processes is `down`'s job.
 */
export function assertNoOrphans(state: StateDir): void {
  const orphans = findWorldProcesses(state);
  if (orphans.length === 0) return;
  throw new RingfenceError(
    "RINGFENCE_WORLD_ORPHANS",
    `${plural(orphans.length, "process", "processes")} of an earlier run of the world in ${state.root} still run without their supervisor (it was killed or crashed): ${describeProcesses(orphans, 8)}. They hold the world's addresses and data; stop them with \`ringfence down --state-dir ${state.root}\`, then \`ringfence up\` again.`,
  );
}

/** `1 process`, `3 processes`. */
export function plural(n: number, one: string, many: string): string {
  return `${n} ${n === 1 ? one : many}`;
}
