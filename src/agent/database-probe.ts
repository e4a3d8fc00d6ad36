/**
 * What one query tells about a running PostgreSQL instance: its role, its WAL positions and
 * timeline (what failover compares), its commit settings, its WAL receiver (where a standby streams
 * from), and, on a primary, its standbys.
 */
import type pg from "pg";
import type { DatabaseReport } from "../world/contracts.js";

/** A probe's answer: the report the controller gets, and what the agent itself acts on. */
export interface Observed {
  readonly role: "primary" | "standby";
  readonly report: DatabaseReport;
  /** A standby's WAL receiver (null when it has none running, and on a primary). */
  readonly receiver: {
    readonly status: string;
    readonly host: string | null;
    readonly port: number | null;
    /** The timeline of the last WAL received (a standby following a promoted primary moves to its new one). */
    readonly timeline: number | null;
  } | null;
}

interface Row {
  standby: boolean;
  lsn: string | null;
  flush_lsn: string | null;
  walfile: string | null;
  checkpoint_tli: number | null;
  ssn: string;
  receiver: string | null;
  received_tli: number | null;
  sender_host: string | null;
  sender_port: number | null;
}

// pg_is_in_recovery() is read once per CASE, so a promotion between two reads costs nothing worse
// than a mixed answer for one probe (pg_walfile_name is only called outside recovery).
// A primary's timeline comes from the name of its current WAL file: pg_control_checkpoint() keeps
// the old one after a promotion until the next checkpoint.
// A standby's flushed position is the greater of what it received and what it replayed (replayed
// WAL is on its disk): pg_last_wal_receive_lsn() is null before streaming starts, and after a
// restart it stays at the start of the segment streaming resumed from until WAL newer than the
// replay position arrives, which a fenced, idle primary does not send.
const PROBE = `
SELECT pg_is_in_recovery() AS standby,
       CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()::text
            ELSE pg_current_wal_lsn()::text END AS lsn,
       CASE WHEN pg_is_in_recovery() THEN GREATEST(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::text
            ELSE pg_current_wal_flush_lsn()::text END AS flush_lsn,
       CASE WHEN pg_is_in_recovery() THEN NULL
            ELSE pg_walfile_name(pg_current_wal_lsn()) END AS walfile,
       (SELECT timeline_id FROM pg_control_checkpoint()) AS checkpoint_tli,
       current_setting('synchronous_standby_names') AS ssn,
       r.status AS receiver, r.received_tli, r.sender_host, r.sender_port
  FROM (SELECT 1) AS one LEFT JOIN pg_stat_wal_receiver r ON true`;

const STANDBYS = `
SELECT application_name, state, sync_state,
       pg_wal_lsn_diff(pg_current_wal_lsn(), flush_lsn)::text AS lag_bytes,
       (EXTRACT(EPOCH FROM flush_lag) * 1000)::text AS flush_lag_ms,
       (EXTRACT(EPOCH FROM replay_lag) * 1000)::text AS replay_lag_ms
  FROM pg_stat_replication ORDER BY application_name`;

/** The timeline in a WAL file name (`000000020000000000000003` is on timeline 2). */
export function timelineOfWalFile(name: string | null): number | null {
  if (name === null || !/^[0-9A-F]{24}$/i.test(name)) return null;
  return Number.parseInt(name.slice(0, 8), 16);
}

/** Probes the instance behind `client` (database slot `id`); throws when it does not answer. */
export async function probeInstance(client: pg.Client, id: string): Promise<Observed> {
  const row = (await client.query<Row>(PROBE)).rows[0];
  if (!row) throw new Error("no answer");
  let standbys: DatabaseReport["standbys"] = [];
  if (!row.standby) {
    const rows = await client.query<{
      application_name: string;
      state: string;
      sync_state: string;
      lag_bytes: string | null;
      flush_lag_ms: string | null;
      replay_lag_ms: string | null;
    }>(STANDBYS);
    standbys = rows.rows.map((r) => ({
      applicationName: r.application_name,
      state: r.state,
      syncState: r.sync_state,
      lagBytes: Number(r.lag_bytes ?? 0),
      flushLagMs: r.flush_lag_ms === null ? null : Number(r.flush_lag_ms),
      replayLagMs: r.replay_lag_ms === null ? null : Number(r.replay_lag_ms),
    }));
  }
  const receivedTli = row.received_tli !== null && row.received_tli > 0 ? row.received_tli : null;
  const timeline = row.standby ? (receivedTli ?? row.checkpoint_tli) : timelineOfWalFile(row.walfile);
  return {
    role: row.standby ? "standby" : "primary",
    report: {
      id,
      role: row.standby ? "standby" : "primary",
      lsn: row.lsn,
      flushLsn: row.flush_lsn,
      timeline: timeline ?? null,
      synchronousStandbyNames: row.ssn === "" ? null : row.ssn,
      standbys,
    },
    receiver:
      row.standby && row.receiver !== null
        ? { status: row.receiver, host: row.sender_host, port: row.sender_port, timeline: receivedTli }
        : null,
  };
}
