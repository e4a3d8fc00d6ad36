/**
 * The PostgreSQL server binaries and the system user they run as: finding initdb, postgres,
 * pg_basebackup and pg_rewind, and running them. PostgreSQL refuses to run as root, so when
 * ringfence runs as root every tool is started as the `postgres` system user and the folders it
 * writes are owned by it.
 */
import { execFile, execFileSync } from "node:child_process";
import { chmodSync, chownSync, existsSync, mkdirSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { RingfenceError } from "./errors.js";

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
