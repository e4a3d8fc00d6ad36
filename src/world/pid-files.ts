/**
 * The files through which a world's processes are found from outside it: `supervisor.pid`, the
 * running supervisor, and `processes.json`, the supervisor and every process it started, each with
 * the start time that tells it apart from a later process the kernel gives the same pid. Both are
 * written to a temporary file and renamed into place, so a crash never leaves half of one.
 */
import { readFileSync, rmSync } from "node:fs";
import { writeFileAtomic } from "../lib/files.js";
import { isAlive, startTimeOf } from "./procfs.js";
import type { StateDir } from "./state.js";

/** One process as recorded: its role (`controller`, `agent:ZONE`, ...), pid and start time. */
export interface RecordedProcess {
  readonly role: string;
  readonly pid: number;
  /** From /proc (clock ticks since boot); null where there is no /proc. */
  readonly startTime: number | null;
}

/** The content of `processes.json`. */
export interface ProcessRecordFile {
  readonly version: 1;
  readonly supervisor: RecordedProcess;
  /** The latest process of each role the supervisor started (a restart replaces its entry). */
  readonly processes: readonly RecordedProcess[];
}

/** The pid in `supervisor.pid`; undefined when the file is missing or holds no pid. */
export function readPidFile(state: StateDir): number | undefined {
  let text: string;
  try {
    text = readFileSync(state.pidFile, "utf8").trim();
  } catch {
    return undefined;
  }
  if (!/^\d+$/.test(text)) return undefined;
  const pid = Number(text);
  return Number.isSafeInteger(pid) && pid > 0 ? pid : undefined;
}

/** `processes.json`, or undefined when it is missing or not what the supervisor writes. */
export function readProcessRecord(state: StateDir): ProcessRecordFile | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(state.processesFile, "utf8"));
  } catch {
    return undefined;
  }
  const file = parsed as Partial<ProcessRecordFile> | null;
  if (file?.version !== 1 || !isRecorded(file.supervisor) || !Array.isArray(file.processes)) {
    return undefined;
  }
  return { version: 1, supervisor: file.supervisor, processes: file.processes.filter(isRecorded) };
}

function isRecorded(value: unknown): value is RecordedProcess {
  const p = value as Partial<RecordedProcess> | null;
  return (
    typeof p === "object" &&
    p !== null &&
    typeof p.role === "string" &&
    Number.isSafeInteger(p.pid) &&
    (p.pid as number) > 0 &&
    (p.startTime === null || Number.isSafeInteger(p.startTime))
  );
}

/**
 * The pid of the supervisor running a world from `state`, if it is alive. A pid that now belongs
 * to another process (its start time differs from the one recorded in `processes.json`) is not.
 */
export function runningSupervisor(state: StateDir): number | undefined {
  const pid = readPidFile(state);
  if (pid === undefined) return undefined;
  const recorded = readProcessRecord(state)?.supervisor;
  const startTime = recorded?.pid === pid ? recorded.startTime : null;
  return isAlive(pid, startTime ?? undefined) ? pid : undefined;
}

/**
 * What the supervisor writes about itself and the processes it starts. `claim` before starting
 * anything, `started` for each process (re)started, `release` once everything stopped.
 */
export class ProcessRecord {
  readonly #state: StateDir;
  readonly #self: RecordedProcess;
  readonly #processes = new Map<string, RecordedProcess>();

  constructor(state: StateDir, supervisorPid: number = process.pid) {
    this.#state = state;
    this.#self = { role: "supervisor", pid: supervisorPid, startTime: startTimeOf(supervisorPid) ?? null };
  }

  /** Records this supervisor (in `processes.json`, then `supervisor.pid`). */
  claim(): void {
    this.#processes.clear();
    this.#write();
    writeFileAtomic(this.#state.pidFile, String(this.#self.pid));
  }

  /** Records that `role` now runs as `pid`, replacing the role's previous process. */
  started(role: string, pid: number): void {
    this.#processes.set(role, { role, pid, startTime: startTimeOf(pid) ?? null });
    this.#write();
  }

  /** Removes both files, unless another supervisor has claimed the state directory since. */
  release(): void {
    if (readPidFile(this.#state) === this.#self.pid) rmSync(this.#state.pidFile, { force: true });
    if (readProcessRecord(this.#state)?.supervisor.pid === this.#self.pid) {
      rmSync(this.#state.processesFile, { force: true });
    }
  }

  #write(): void {
    const file: ProcessRecordFile = {
      version: 1,
      supervisor: this.#self,
      processes: [...this.#processes.values()],
    };
    writeFileAtomic(this.#state.processesFile, `${JSON.stringify(file, null, 2)}\n`);
  }
}
