/**
 * Cloning a standby without pg_basebackup (PostgreSQL from npm has none), with the low-level backup
 * API over an ordinary connection to the primary: `pg_backup_start`, a copy of the data directory
 * read through `pg_ls_dir` / `pg_read_binary_file`, then `pg_backup_stop`, whose `backup_label` the
 * copy gets. The copy needs the WAL from the backup's start: a temporary physical replication slot,
 * created in the same session before the backup starts, keeps the primary from recycling it, and the
 * segments from start to stop are copied into `pg_wal` after the stop (the standby streams the rest).
 * Reading through SQL rather than the file system means it works wherever pg_basebackup would: the
 * primary may be on another host, and its files may belong to another user.
 *
 * Skipped like pg_basebackup skips them: the contents of pg_wal, pg_replslot, pg_stat_tmp,
 * pg_dynshmem, pg_notify, pg_serial, pg_snapshots, pg_subtrans; postmaster.pid/.opts, an old
 * backup_label or tablespace_map, pg_internal.init and pgsql_tmp*.
 */
import { appendFileSync, chownSync, mkdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type pg from "pg";
import { RingfenceError } from "./errors.js";
import type { RunAs } from "./postgres-binaries.js";
import { pgClient } from "./postgres-client.js";

const EMPTIED_DIRS = new Set([
  "pg_wal",
  "pg_replslot",
  "pg_stat_tmp",
  "pg_dynshmem",
  "pg_notify",
  "pg_serial",
  "pg_snapshots",
  "pg_subtrans",
]);
const SKIPPED_FILES = new Set([
  "postmaster.pid",
  "postmaster.opts",
  "backup_label",
  "tablespace_map",
  "postgresql.auto.conf.tmp",
  "current_logfiles.tmp",
]);
/** Bytes read per query: whole small files batched, big ones in pieces. */
const CHUNK = 8 * 1024 * 1024;

interface Entry {
  readonly path: string;
  readonly size: number;
}

function skipped(name: string): boolean {
  return SKIPPED_FILES.has(name) || name.startsWith("pg_internal.init") || name.startsWith("pgsql_tmp");
}

/**
 * Copies the primary at `source` into the empty `dataDir` (made by the caller) as a standby's data:
 * files owned by `runAs`, `backup_label` and `standby.signal` written. The caller writes
 * `primary_conninfo` and `pg_hba.conf`. Aborting `signal` ends the session, which aborts the backup.
 */
export async function cloneWithBackupApi(
  dataDir: string,
  runAs: RunAs | undefined,
  source: { host: string; port: number; applicationName: string },
  options: { signal?: AbortSignal } = {},
): Promise<void> {
  const client = pgClient(source.host, source.port, "postgres", { connectionTimeoutMillis: 10_000 });
  client.on("error", () => {});
  const abort = () => {
    void client.end().catch(() => {});
  };
  options.signal?.addEventListener("abort", abort, { once: true });
  try {
    await client.connect();
    const version = Number(
      (await client.query<{ v: string }>("SELECT current_setting('server_version_num') AS v")).rows[0]?.v ??
        0,
    );
    const slot = `ringfence_clone_${process.pid}_${Date.now()}`;
    // Temporary: dropped when this session ends, by success, failure or abort.
    await client.query("SELECT pg_create_physical_replication_slot($1, true, true)", [slot]);
    const label = `ringfence clone for ${source.applicationName}`;
    const start = await client.query<{ lsn: string }>(
      version >= 150000
        ? "SELECT pg_backup_start($1, true)::text AS lsn"
        : "SELECT pg_start_backup($1, true, false)::text AS lsn",
      [label],
    );
    const startLsn = start.rows[0]?.lsn as string;
    const files = await listFiles(client, dataDir, runAs);
    // pg_control last, as pg_basebackup sends it.
    const control = files.filter((f) => f.path === "global/pg_control");
    await copyFiles(client, dataDir, runAs, [
      ...files.filter((f) => f.path !== "global/pg_control"),
      ...control,
    ]);
    const stop = await client.query<{ lsn: string; labelfile: string; spcmapfile: string | null }>(
      version >= 150000
        ? "SELECT lsn::text, labelfile, spcmapfile FROM pg_backup_stop(false)"
        : "SELECT lsn::text, labelfile, spcmapfile FROM pg_stop_backup(false, false)",
    );
    const row = stop.rows[0];
    if (!row) throw new Error("pg_backup_stop returned nothing");
    if (row.spcmapfile && row.spcmapfile.trim() !== "") {
      throw new RingfenceError(
        "RINGFENCE_PG_FAILED",
        `cannot clone ${source.host}:${source.port} without pg_basebackup: it has tablespaces, which the low-level copy does not carry`,
      );
    }
    await copyWal(client, dataDir, runAs, startLsn, row.lsn);
    writeOwned(join(dataDir, "backup_label"), row.labelfile, runAs);
    writeOwned(join(dataDir, "standby.signal"), "", runAs);
  } catch (err) {
    if (err instanceof RingfenceError) throw err;
    throw new RingfenceError(
      "RINGFENCE_PG_FAILED",
      `cloning from ${source.host}:${source.port} with the backup API failed: ${(err as Error).message}`,
      { cause: err },
    );
  } finally {
    options.signal?.removeEventListener("abort", abort);
    await client.end().catch(() => {});
  }
}

/** Lists every file to copy (breadth first) and creates the folders in `dataDir` meanwhile. */
async function listFiles(client: pg.Client, dataDir: string, runAs: RunAs | undefined): Promise<Entry[]> {
  const files: Entry[] = [];
  const dirs = ["."];
  for (let dir = dirs.shift(); dir !== undefined; dir = dirs.shift()) {
    const rows = (
      await client.query<{ name: string; isdir: boolean | null; size: string | null }>(
        `SELECT name, (s).isdir AS isdir, (s).size::text AS size
           FROM (SELECT name, pg_stat_file($1 || '/' || name, true) AS s FROM pg_ls_dir($1, true, false) AS name) x`,
        [dir],
      )
    ).rows;
    for (const r of rows) {
      if (r.isdir === null) continue; // gone meanwhile
      const path = dir === "." ? r.name : `${dir}/${r.name}`;
      if (r.isdir) {
        makeDir(join(dataDir, path), runAs);
        if (!(dir === "." && EMPTIED_DIRS.has(r.name)) && !r.name.startsWith("pgsql_tmp")) dirs.push(path);
        if (dir === "." && r.name === "pg_wal") makeDir(join(dataDir, "pg_wal", "archive_status"), runAs);
      } else if (!skipped(r.name)) {
        files.push({ path, size: Number(r.size ?? 0) });
      }
    }
  }
  return files;
}

/** Reads files through the connection and writes them into `dataDir`, small ones several a query. */
async function copyFiles(
  client: pg.Client,
  dataDir: string,
  runAs: RunAs | undefined,
  files: readonly Entry[],
): Promise<void> {
  let batch: Entry[] = [];
  let batchBytes = 0;
  const flush = async () => {
    if (batch.length === 0) return;
    const rows = (
      await client.query<{ path: string; data: Buffer | null }>(
        "SELECT path, pg_read_binary_file(path, 0, $2, true) AS data FROM unnest($1::text[]) AS path",
        [batch.map((f) => f.path), CHUNK],
      )
    ).rows;
    for (const r of rows) {
      if (r.data === null) continue; // removed meanwhile (a dropped table): WAL replay drops it too
      writeOwned(join(dataDir, r.path), r.data, runAs);
      if (r.data.length === CHUNK) await copyRest(client, dataDir, r.path); // it grew meanwhile
    }
    batch = [];
    batchBytes = 0;
  };
  for (const f of files) {
    if (f.size >= CHUNK) {
      writeOwned(join(dataDir, f.path), Buffer.alloc(0), runAs);
      await copyRest(client, dataDir, f.path);
      continue;
    }
    if (batchBytes + f.size > CHUNK || batch.length >= 500) await flush();
    batch.push(f);
    batchBytes += f.size;
  }
  await flush();
}

/** Appends the file at `path` from where the local copy ends, a chunk a query, until it ends. */
async function copyRest(client: pg.Client, dataDir: string, path: string): Promise<void> {
  const local = join(dataDir, path);
  for (;;) {
    const offset = statSync(local).size;
    const data = (
      await client.query<{ data: Buffer | null }>("SELECT pg_read_binary_file($1, $2, $3, true) AS data", [
        path,
        offset,
        CHUNK,
      ])
    ).rows[0]?.data;
    if (!data || data.length === 0) return;
    appendFileSync(local, data);
    if (data.length < CHUNK) return;
  }
}

/** Copies the WAL segments from the one holding `startLsn` to the one holding `stopLsn`, and timeline histories. */
async function copyWal(
  client: pg.Client,
  dataDir: string,
  runAs: RunAs | undefined,
  startLsn: string,
  stopLsn: string,
): Promise<void> {
  const names = (
    await client.query<{ first: string; last: string }>(
      "SELECT pg_walfile_name($1::pg_lsn) AS first, pg_walfile_name($2::pg_lsn) AS last",
      [startLsn, stopLsn],
    )
  ).rows[0];
  if (!names) throw new Error("pg_walfile_name returned nothing");
  const wal = (
    await client.query<{ name: string; size: string }>("SELECT name, size::text FROM pg_ls_waldir()")
  ).rows
    .filter(
      (w) =>
        w.name.endsWith(".history") ||
        (/^[0-9A-F]{24}$/.test(w.name) && w.name >= names.first && w.name <= names.last),
    )
    .map((w) => ({ path: `pg_wal/${w.name}`, size: Number(w.size) }));
  const missing = /^[0-9A-F]{24}$/.test(names.first) && !wal.some((w) => w.path === `pg_wal/${names.first}`);
  if (missing)
    throw new Error(`the WAL segment ${names.first} where the backup starts is gone from the primary`);
  await copyFiles(client, dataDir, runAs, wal);
}

function makeDir(dir: string, runAs: RunAs | undefined): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  if (runAs) chownSync(dir, runAs.uid, runAs.gid);
}

function writeOwned(file: string, data: string | Buffer, runAs: RunAs | undefined): void {
  rmSync(file, { force: true });
  writeFileSync(file, data, { mode: 0o600 });
  if (runAs) chownSync(file, runAs.uid, runAs.gid);
}
