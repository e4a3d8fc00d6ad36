/**
 * Small operations on a cell database's data directory that the agent's failover work needs: telling
 * whether it last ran as a primary, remembering that a rewind or a copy into it did not finish, and
 * moving a hopeless one aside before a re-clone.
 */
import { existsSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";

/**
 * True when the data directory last ran as a primary: it has no `standby.signal` (standbys are
 * created with one by `pg_basebackup -R`, and promotion removes it). Such an instance must be
 * rewound before it may follow another primary.
 */
export function ranAsPrimary(dataDir: string): boolean {
  return existsSync(join(dataDir, "PG_VERSION")) && !existsSync(join(dataDir, "standby.signal"));
}

/**
 * Renames `dataDir` to `<dataDir>.failed-<timestamp>`, keeping it for a post-mortem, after deleting
 * older copies set aside the same way (one is enough to look at, and each is a full copy).
 * Returns the new path.
 */
export function moveAside(dataDir: string, at: Date = new Date()): string {
  const parent = dirname(dataDir);
  const prefix = `${basename(dataDir)}.failed-`;
  for (const name of readdirSync(parent)) {
    if (name.startsWith(prefix)) rmSync(join(parent, name), { recursive: true, force: true });
  }
  const aside = `${dataDir}.failed-${at.toISOString().replace(/[:.]/g, "-")}`;
  renameSync(dataDir, aside);
  return aside;
}

/** The last `n` non-empty lines of a tool's output, for an event an operator reads. */
export function lastLines(text: string, n: number): string {
  return text
    .split("\n")
    .map((l) => l.trimEnd())
    .filter((l) => l !== "")
    .slice(-n)
    .join("\n");
}

/** The file beside a data directory that says a pg_rewind or pg_basebackup into it is under way. */
function markerOf(dataDir: string): string {
  // Beside it, not in it: pg_rewind deletes files the source does not have.
  return `${dataDir}.incomplete`;
}

/**
 * Records that a pg_rewind or pg_basebackup into `dataDir` starts: until `finished`, the data may be
 * half-written (a crash of the agent, an abort), and starting it could serve corrupt data.
 */
export function markIncomplete(dataDir: string, what: "rewind" | "clone"): void {
  writeFileSync(markerOf(dataDir), `${what}\n`);
}

/** The step `markIncomplete` recorded and that never finished, if any. */
export function unfinished(dataDir: string): "rewind" | "clone" | undefined {
  try {
    const what = readFileSync(markerOf(dataDir), "utf8").trim();
    return what === "clone" ? "clone" : "rewind";
  } catch {
    return undefined;
  }
}

/** The step `markIncomplete` recorded finished: the data is whole. */
export function finished(dataDir: string): void {
  rmSync(markerOf(dataDir), { force: true });
}
