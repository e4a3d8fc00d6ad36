/**
 * What the logs say about a start that failed: for each (region, cell) pair that did not serve, the
 * lines of its own processes' logs that most likely say why, each located by file and line so that
 * nobody has to hunt for them. Only lines written since the start count ({@link logMarks}): a state
 * directory that is started again keeps the logs of every earlier run.
 *
 * Which lines, per pair (region R, cell C):
 *
 * - each service instance of C in R (`instance-SERVICE-C-R-N.log`): its last lines, whatever they
 *   are (it is the service's own output: a stack trace, "cannot open config", ...);
 * - the agent of each zone running them (`agent-R-Z.log`): its last lines about those instances, the
 *   database and the writer endpoint of C in R (`instance:…: exited unexpectedly (exit code 3)`,
 *   `…: unhealthy: health check answered 500`), without the routine `started`/`restarting` ones;
 * - the database of C in R (`db-C-R.log`): its last `FATAL`, `PANIC` and `ERROR` lines, but for
 *   those every start and stop prints ("the database system is starting up");
 * - the router of R (`router-R.log`): its last lines that report a failure.
 *
 * When none of these says anything (the agent had not started them yet), the pair gets the agent's
 * last lines instead, or the note that it logged nothing since the start.
 *
 * A line repeated (a crash loop prints the same thing every restart; timestamps and pids aside) is
 * shown once, at its last occurrence, with how many times and from which line.
 */
import { closeSync, openSync, readdirSync, readSync, statSync } from "node:fs";
import { join } from "node:path";
import type { Problem } from "../lib/errors.js";
import type { Layout } from "./layout.js";
import type { UnservedPair } from "./readiness.js";
import type { StateDir } from "./state.js";

/** The size of each log file at a moment: the lines before it belong to earlier runs. */
export type LogMarks = ReadonlyMap<string, number>;

/** The size of every log in `logsDir` now (none when the folder does not exist yet). */
export function logMarks(logsDir: string): LogMarks {
  const marks = new Map<string, number>();
  let names: string[];
  try {
    names = readdirSync(logsDir);
  } catch {
    return marks;
  }
  for (const name of names) {
    try {
      marks.set(join(logsDir, name), statSync(join(logsDir, name)).size);
    } catch {
      // gone meanwhile
    }
  }
  return marks;
}

/** A log line: its text and its 1-based number in the whole file. */
export interface LogLine {
  readonly line: number;
  readonly text: string;
}

/** At most this much of a log's end is read; older lines of a start are rarely the reason. */
const READ_AT_MOST = 4 * 1024 * 1024;

/**
 * The non-blank lines of `file` written after `mark` bytes (a mark beyond the file's size, after a
 * truncation, counts from the start), with their line numbers in the whole file.
 */
export function linesSince(file: string, mark = 0): LogLine[] {
  let fd: number;
  try {
    fd = openSync(file, "r");
  } catch {
    return [];
  }
  try {
    const size = statSync(file).size;
    const from = Math.max(mark > size ? 0 : mark, size - READ_AT_MOST);
    // The line numbers need the newlines before `from`, counted in chunks.
    let line = 1;
    const chunk = Buffer.alloc(1 << 16);
    for (let at = 0; at < from; ) {
      const n = readSync(fd, chunk, 0, Math.min(chunk.length, from - at), at);
      if (n === 0) break;
      for (let i = chunk.indexOf(10); i !== -1 && i < n; i = chunk.indexOf(10, i + 1)) line++;
      at += n;
    }
    const rest = Buffer.alloc(size - from);
    let read = 0;
    while (read < rest.length) {
      const n = readSync(fd, rest, read, rest.length - read, from + read);
      if (n === 0) break;
      read += n;
    }
    const out: LogLine[] = [];
    for (const text of rest.subarray(0, read).toString("utf8").split("\n")) {
      if (text.trim() !== "") out.push({ line, text: text.trimEnd() });
      line++;
    }
    return out;
  } finally {
    closeSync(fd);
  }
}

/** How many lines of each kind are shown per pair. */
const SHOWN = { instance: 5, agent: 4, database: 3, router: 2 } as const;

/** Agent lines that say nothing about why: a process started, or a restart scheduled. */
const ROUTINE_AGENT_LINE = /: (started \(pid \d+\)|restarting in \d+ ms \(restart \d+\))$/;
const DATABASE_TROUBLE = /\b(FATAL|PANIC|ERROR):/;
/** What a server says to connections that come while it starts or stops, and to its walreceiver. */
const DATABASE_ROUTINE =
  /the database system is (starting up|shutting down|not yet accepting connections)|terminating walreceiver process due to administrator command/;
const ROUTER_TROUBLE = /error|fail|refus|unreachable|cannot|could not|timed out/i;

/**
 * For each pair, the log lines that say why it did not serve (see the module comment), as problems
 * located by file and line with the pair (`R/C`) as their path. A line that explains several pairs
 * is listed once, under the first.
 */
export function explainUnserved(
  layout: Layout,
  state: StateDir,
  unserved: readonly UnservedPair[],
  marks: LogMarks,
): Problem[] {
  const problems: Problem[] = [];
  const listed = new Set<string>();
  const cache = new Map<string, LogLine[]>();
  const lines = (file: string) => {
    let found = cache.get(file);
    if (found === undefined) {
      found = linesSince(file, marks.get(file) ?? 0);
      cache.set(file, found);
    }
    return found;
  };
  let found = 0;
  const add = (path: string, file: string, picked: readonly LogLine[], count: number) => {
    found += picked.length;
    for (const l of collapseRepeats(picked).slice(-count)) {
      const key = `${file}:${l.line}`;
      if (listed.has(key)) continue;
      listed.add(key);
      const repeated = l.times > 1 ? ` (${l.times} times, first at line ${l.first})` : "";
      problems.push({ path, file, line: l.line, message: `${l.text}${repeated}` });
    }
  };
  for (const { region, cell } of unserved) {
    const path = `${region}/${cell}`;
    found = 0;
    const instances = layout.instances.filter(
      (i) => i.cell === cell && i.region === region && i.kind === "service",
    );
    const database = layout.databases.find((d) => d.cell === cell && d.region === region);
    for (const instance of instances) {
      const file = state.log(`instance-${instance.id}`);
      add(path, file, lines(file), SHOWN.instance);
    }
    const subjects = [
      ...instances.map((i) => `instance:${i.id}:`),
      ...(database ? [`database:${database.id}:`, `writer:${database.id}:`] : []),
    ];
    const zones = [...new Set([...instances.map((i) => i.zone), ...(database ? [database.zone] : [])])];
    for (const zone of zones) {
      const file = state.log(`agent-${zone}`);
      const about = lines(file).filter(
        (l) => subjects.some((s) => l.text.includes(s)) && !ROUTINE_AGENT_LINE.test(l.text),
      );
      add(path, file, about, SHOWN.agent);
    }
    if (database) {
      const file = state.log(`db-${database.id}`);
      add(
        path,
        file,
        lines(file).filter((l) => DATABASE_TROUBLE.test(l.text) && !DATABASE_ROUTINE.test(l.text)),
        SHOWN.database,
      );
    }
    const router = state.log(`router-${region}`);
    add(
      path,
      router,
      lines(router).filter((l) => ROUTER_TROUBLE.test(l.text)),
      SHOWN.router,
    );
    if (found > 0) continue;
    for (const zone of zones) {
      const file = state.log(`agent-${zone}`);
      const last = lines(file);
      if (last.length > 0) add(path, file, last, SHOWN.agent);
      else if (!listed.has(file)) {
        listed.add(file);
        problems.push({
          path,
          file,
          message: `the agent of ${zone} logged nothing since the start: it had not started what runs there`,
        });
      }
    }
  }
  return problems;
}

/** A log line standing for all its repeats: the last one, how many there were, and the first's line. */
export interface RepeatedLine extends LogLine {
  readonly times: number;
  readonly first: number;
}

/** Timestamps and pids, which differ between repeats of the same line. */
const VARYING = [
  /^\d{4}-\d\d-\d\d[T ][\d:.]+(Z| [A-Z]{2,5})? /, // ISO (ours) or PostgreSQL's `2025-01-01 12:00:00.123 UTC`
  /\[\d+\]/g, // PostgreSQL's [pid]
  /\bpid \d+/g,
];

function sameness(text: string): string {
  return VARYING.reduce((t, re) => t.replace(re, ""), text);
}

/**
 * The lines in order of their last occurrence, each repeat (equal but for timestamps and pids)
 * folded into it.
 */
export function collapseRepeats(lines: readonly LogLine[]): RepeatedLine[] {
  const groups = new Map<string, RepeatedLine>();
  for (const l of lines) {
    const key = sameness(l.text);
    const seen = groups.get(key);
    groups.delete(key); // re-inserted last: the map keeps the order of last occurrences
    groups.set(key, { ...l, times: (seen?.times ?? 0) + 1, first: seen?.first ?? l.line });
  }
  return [...groups.values()];
}

/** The last `count` lines of `file` since `mark` that match `filter`, as problems under `path`. */
export function logProblems(
  path: string,
  file: string,
  marks: LogMarks,
  count: number,
  filter: RegExp = /./,
): Problem[] {
  return collapseRepeats(linesSince(file, marks.get(file) ?? 0).filter((l) => filter.test(l.text)))
    .slice(-count)
    .map((l) => ({
      path,
      file,
      line: l.line,
      message: l.times > 1 ? `${l.text} (${l.times} times, first at line ${l.first})` : l.text,
    }));
}
