/**
 * PostgreSQL instances as child processes: finding the server binaries, creating a primary with
 * initdb or a streaming standby with pg_basebackup, writing ringfence's settings, and running the
 * server. PostgreSQL refuses to run as root, so when ringfence runs as root every tool and server is
 * started as the `postgres` system user and data directories are owned by it.
 */
import { type ChildProcess, execFile, execFileSync, spawn } from "node:child_process";
import {
  chmodSync,
  chownSync,
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { dirname, join } from "node:path";
import pg from "pg";
import { RingfenceError } from "./errors.js";
import { signalTree } from "./proctree.js";

export interface PgBinaries {
  /** Folder holding initdb, postgres, pg_basebackup, pg_rewind. */
  readonly bindir: string;
  readonly majorVersion: number;
}

/** The system user PostgreSQL runs as when ringfence runs as root; undefined otherwise. */
export interface RunAs {
  readonly user: string;
  readonly uid: number;
  readonly gid: number;
}

const REQUIRED = ["initdb", "postgres", "pg_basebackup"];

/**
 * Finds the server binaries: `RINGFENCE_PG_BIN`, then `pg_config --bindir`, then the newest
 * `/usr/lib/postgresql/VERSION/bin`. Throws `RINGFENCE_PG_NOT_FOUND` saying how to install them.
 */
export function findPgBinaries(
  env: NodeJS.ProcessEnv = process.env,
  search: { pgConfig?: string; debianRoot?: string } = {},
): PgBinaries {
  const candidates: string[] = [];
  if (env.RINGFENCE_PG_BIN) candidates.push(env.RINGFENCE_PG_BIN);
  try {
    const out = execFileSync(search.pgConfig ?? "pg_config", ["--bindir"], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "ignore"],
    });
    candidates.push(out.trim());
  } catch {
    // pg_config is often only the client's; fall through to the Debian layout.
  }
  const debianRoot = search.debianRoot ?? "/usr/lib/postgresql";
  try {
    const versions = readdirSync(debianRoot)
      .filter((v) => /^\d+$/.test(v))
      .sort((a, b) => Number(b) - Number(a));
    for (const v of versions) candidates.push(join(debianRoot, v, "bin"));
  } catch {
    // no Debian layout
  }
  for (const bindir of candidates) {
    if (REQUIRED.every((tool) => existsSync(join(bindir, tool)))) {
      return { bindir, majorVersion: serverVersion(bindir) };
    }
  }
  const looked = candidates.length > 0 ? ` (looked in ${candidates.join(", ")})` : "";
  throw new RingfenceError(
    "RINGFENCE_PG_NOT_FOUND",
    `PostgreSQL server binaries (initdb, postgres, pg_basebackup) not found${looked}. Install them, e.g. \`apt-get install postgresql\` on Debian/Ubuntu, or set RINGFENCE_PG_BIN to the folder that holds them.`,
  );
}

function serverVersion(bindir: string): number {
  const out = execFileSync(join(bindir, "postgres"), ["--version"], { encoding: "utf8" });
  const m = /(\d+)(?:\.\d+)?/.exec(out);
  return m ? Number(m[1]) : 0;
}

/** Whom to run PostgreSQL as: the `postgres` user when we are root, ourselves otherwise. */
export function pgRunAs(): RunAs | undefined {
  if (typeof process.getuid !== "function" || process.getuid() !== 0) return undefined;
  const line = readFileSync("/etc/passwd", "utf8")
    .split("\n")
    .find((l) => l.startsWith("postgres:"));
  const parts = line?.split(":");
  if (!parts || parts.length < 4) {
    throw new RingfenceError(
      "RINGFENCE_PG_NOT_FOUND",
      "running as root, PostgreSQL must run as the `postgres` user, which does not exist; install the postgresql package (it creates the user) or run ringfence as an ordinary user",
    );
  }
  return { user: "postgres", uid: Number(parts[2]), gid: Number(parts[3]) };
}

/**
 * Creates `dir` (and missing parents) so that `runAs` can use it: the folder itself is owned by
 * that user with mode 0700, as PostgreSQL requires of a data directory.
 */
export function makeOwnedDir(dir: string, runAs: RunAs | undefined, mode = 0o700): void {
  mkdirSync(dir, { recursive: true, mode });
  chmodSync(dir, mode);
  if (runAs) chownSync(dir, runAs.uid, runAs.gid);
}

/** Why `runAs` could not reach `dir` (a parent it cannot traverse), or undefined when it can. */
export function untraversableParent(dir: string, runAs: RunAs | undefined): string | undefined {
  if (!runAs) return undefined;
  let current = dirname(dir);
  while (true) {
    try {
      execFileSync("test", ["-x", current], { uid: runAs.uid, gid: runAs.gid, stdio: "ignore" });
    } catch {
      return current;
    }
    const parent = dirname(current);
    if (parent === current) return undefined;
    current = parent;
  }
}

/** Runs a PostgreSQL tool to completion as `runAs`, failing with its output. */
export function runTool(
  bin: PgBinaries,
  tool: string,
  args: string[],
  runAs: RunAs | undefined,
  timeoutMs = 120_000,
): string {
  try {
    return execFileSync(join(bin.bindir, tool), args, {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "pipe"],
      timeout: timeoutMs,
      ...(runAs ? { uid: runAs.uid, gid: runAs.gid } : {}),
      env: { ...process.env, LC_ALL: "C", ...(runAs ? { HOME: "/tmp" } : {}) },
    });
  } catch (err) {
    const e = err as { stderr?: string; stdout?: string; message: string };
    throw new RingfenceError(
      "RINGFENCE_PG_FAILED",
      `${tool} ${args.join(" ")} failed: ${(e.stderr || e.stdout || e.message).trim()}`,
      { cause: err },
    );
  }
}

/**
 * Runs a PostgreSQL tool to completion as `runAs` without blocking the event loop (pg_rewind and
 * pg_basebackup can take long, and an agent keeps heartbeating and promoting other cells meanwhile).
 * Resolves with its output, stdout then stderr (pg_rewind reports on stderr); fails like `runTool`.
 * Aborting `signal` kills the tool.
 */
export function runToolAsync(
  bin: PgBinaries,
  tool: string,
  args: string[],
  runAs: RunAs | undefined,
  options: { timeoutMs?: number; signal?: AbortSignal } = {},
): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      join(bin.bindir, tool),
      args,
      {
        encoding: "utf8",
        timeout: options.timeoutMs ?? 120_000,
        maxBuffer: 16 * 1024 * 1024,
        ...(options.signal ? { signal: options.signal } : {}),
        ...(runAs ? { uid: runAs.uid, gid: runAs.gid } : {}),
        env: { ...process.env, LC_ALL: "C", ...(runAs ? { HOME: "/tmp" } : {}) },
      },
      (err, stdout, stderr) => {
        if (!err) {
          resolve(`${stdout}${stderr}`);
          return;
        }
        reject(
          new RingfenceError(
            "RINGFENCE_PG_FAILED",
            `${tool} ${args.join(" ")} failed: ${(stderr || stdout || err.message).trim()}`,
            { cause: err },
          ),
        );
      },
    );
  });
}

/** The superuser ringfence creates in every instance (trusted on loopback only). */
export const PG_SUPERUSER = "ringfence";

/** Creates a new cluster in `dataDir` with initdb (no-op when it exists). */
export function initPrimary(bin: PgBinaries, dataDir: string, runAs: RunAs | undefined): void {
  if (existsSync(join(dataDir, "PG_VERSION"))) return;
  makeOwnedDir(dataDir, runAs);
  runTool(
    bin,
    "initdb",
    ["-D", dataDir, "-U", PG_SUPERUSER, "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync"],
    runAs,
  );
  writeHba(dataDir);
}

/**
 * Creates a streaming standby of the primary at `host:port` in `dataDir` with
 * `pg_basebackup -R`, connecting as `applicationName` so that `synchronous_standby_names` can
 * name it. No-op when the data directory exists.
 */
export function cloneStandby(
  bin: PgBinaries,
  dataDir: string,
  runAs: RunAs | undefined,
  source: { host: string; port: number; applicationName: string },
): void {
  if (existsSync(join(dataDir, "PG_VERSION"))) return;
  makeOwnedDir(dataDir, runAs);
  const conn = `host=${source.host} port=${source.port} user=${PG_SUPERUSER} application_name=${source.applicationName}`;
  runTool(
    bin,
    "pg_basebackup",
    ["-D", dataDir, "-d", conn, "-R", "-X", "stream", "-c", "fast", "--no-sync"],
    runAs,
    300_000,
  );
  writeHba(dataDir);
  stripPrimaryConninfo(dataDir);
}

/** `cloneStandby` without blocking the event loop; removes a partial copy when pg_basebackup fails. */
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

/**
 * Removes `primary_conninfo` from `postgresql.auto.conf`, where `pg_basebackup -R` writes it: that
 * file is read after `ringfence.conf` and would override the primary ringfence points the standby at.
 */
export function stripPrimaryConninfo(dataDir: string): void {
  const auto = join(dataDir, "postgresql.auto.conf");
  if (!existsSync(auto)) return;
  const text = readFileSync(auto, "utf8");
  const kept = text
    .split("\n")
    .filter((l) => !l.startsWith("primary_conninfo"))
    .join("\n");
  if (kept !== text) writeFileSync(auto, kept);
}

/** The `primary_conninfo` of a standby following the primary at `host:port` as `applicationName`. */
export function primaryConninfo(source: { host: string; port: number; applicationName: string }): string {
  return `host=${source.host} port=${source.port} user=${PG_SUPERUSER} application_name=${source.applicationName}`;
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

/** Creates `standby.signal`: the instance starts as a standby of its `primary_conninfo`. */
export function writeStandbySignal(dataDir: string, runAs: RunAs | undefined): void {
  const file = join(dataDir, "standby.signal");
  writeFileSync(file, "");
  if (runAs) chownSync(file, runAs.uid, runAs.gid);
}

function writeHba(dataDir: string): void {
  // Loopback only: the local world binds every instance to 127.x addresses.
  const hba = [
    "# written by ringfence: trust loopback (the local world binds to 127.0.0.0/8 only)",
    "host all all 127.0.0.0/8 trust",
    "host replication all 127.0.0.0/8 trust",
    "",
  ].join("\n");
  writeFileSync(join(dataDir, "pg_hba.conf"), hba);
}

/** Settings common to every instance of a cell; `synchronous_standby_names` is set per primary. */
export function baseSettings(host: string, port: number): Record<string, string | number> {
  return {
    listen_addresses: host,
    port,
    unix_socket_directories: "",
    wal_level: "replica",
    max_wal_senders: 10,
    max_replication_slots: 10,
    wal_keep_size: "256MB",
    hot_standby: "on",
    hot_standby_feedback: "on",
    wal_log_hints: "on", // pg_rewind needs it for failback
    synchronous_commit: "on",
    wal_receiver_status_interval: "1s",
    wal_receiver_timeout: "10s",
    wal_sender_timeout: "10s",
    shared_buffers: "16MB",
    max_connections: 60,
    fsync: "on",
    log_line_prefix: "%m [%p] ",
    log_min_messages: "warning",
  };
}

/** `ANY k ("a", "b")`: commit waits for k of the named standbys to flush. Empty when k is 0. */
export function synchronousStandbyNames(k: number, names: readonly string[]): string {
  if (k <= 0 || names.length === 0) return "";
  return `ANY ${Math.min(k, names.length)} (${names.map((n) => `"${n}"`).join(", ")})`;
}

/**
 * Writes ringfence's settings to `ringfence.conf`, included from postgresql.conf. The file is
 * rewritten whole, so settings removed here disappear on the next start or reload.
 */
export function writeSettings(
  dataDir: string,
  settings: Record<string, string | number>,
  runAs: RunAs | undefined,
): void {
  const lines = Object.entries(settings).map(
    ([k, v]) => `${k} = ${typeof v === "number" ? v : `'${String(v).replace(/'/g, "''")}'`}`,
  );
  const file = join(dataDir, "ringfence.conf");
  writeFileSync(file, `# written by ringfence; edits are overwritten\n${lines.join("\n")}\n`);
  const conf = join(dataDir, "postgresql.conf");
  const text = readFileSync(conf, "utf8");
  if (!text.includes("include_if_exists = 'ringfence.conf'")) {
    writeFileSync(conf, `${text}\ninclude_if_exists = 'ringfence.conf'\n`);
  }
  if (runAs) chownSync(file, runAs.uid, runAs.gid);
}

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

/** Opens a client to an instance as the ringfence superuser. */
export function pgClient(
  host: string,
  port: number,
  database = "postgres",
  extra: Partial<pg.ClientConfig> = {},
): pg.Client {
  return new pg.Client({
    host,
    port,
    user: PG_SUPERUSER,
    database,
    connectionTimeoutMillis: 2_000,
    ...extra,
  });
}

/** Waits until the instance accepts queries, or throws after `timeoutMs`. */
export async function waitReady(host: string, port: number, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    const client = pgClient(host, port);
    try {
      await client.connect();
      await client.query("SELECT 1");
      return;
    } catch (err) {
      last = err;
      await new Promise((r) => setTimeout(r, 100));
    } finally {
      await client.end().catch(() => {});
    }
  }
  throw new RingfenceError(
    "RINGFENCE_PG_FAILED",
    `PostgreSQL at ${host}:${port} not ready after ${timeoutMs} ms: ${(last as Error)?.message ?? "no answer"}`,
  );
}

/** Runs one query on a fresh connection and closes it. */
export async function queryOnce<T extends pg.QueryResultRow = pg.QueryResultRow>(
  host: string,
  port: number,
  sql: string,
  params: unknown[] = [],
  database = "postgres",
): Promise<T[]> {
  const client = pgClient(host, port, database);
  await client.connect();
  try {
    return (await client.query<T>(sql, params)).rows;
  } finally {
    await client.end().catch(() => {});
  }
}
