/**
 * The files ringfence writes into a data directory: `pg_hba.conf` (trust loopback),
 * `ringfence.conf` with the settings of every instance, `standby.signal`, and the
 * `primary_conninfo` a standby follows (kept out of `postgresql.auto.conf`, where it would win).
 */
import { chownSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { RunAs } from "./postgres-binaries.js";
import { PG_SUPERUSER } from "./postgres-client.js";

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

/** Creates `standby.signal`: the instance starts as a standby of its `primary_conninfo`. */
export function writeStandbySignal(dataDir: string, runAs: RunAs | undefined): void {
  const file = join(dataDir, "standby.signal");
  writeFileSync(file, "");
  if (runAs) chownSync(file, runAs.uid, runAs.gid);
}

/** Writes `pg_hba.conf`: trust on loopback for clients and replication, nothing else. */
export function writeHba(dataDir: string): void {
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
    // How soon a standby tries streaming again after its stream ended: a repoint to a new primary,
    // or the timeline switch when the standby it cascades from is promoted. Each waits out this
    // interval (5 s by default) before the first try, and the new primary's commits wait for a
    // standby to stream from it: a switchover's write pause. A standby following a promoted
    // primary onto its new timeline waits it out twice. (Each try starts a WAL receiver process:
    // 20 a second at most while a primary is unreachable, until failover repoints the standby.)
    wal_retrieve_retry_interval: "50ms",
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
