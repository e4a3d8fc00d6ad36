/**
 * When the old primary's own word proves what it acknowledged. Fencing a cell bumps the desired
 * version; an agent that runs that version (or a later one) has closed the cell's writer endpoints
 * it holds and refuses new connections, and services write only through them (`DATABASE_WRITE_URL`;
 * `DATABASE_URL` is for reads, although in the primary's region it reaches the primary itself, which
 * no fence closes: the same assumption the fence itself makes). Once
 * every agent holding a writer endpoint of the cell runs the fence, no commit can reach the old
 * primary any more, so none can be acknowledged after that: a commit is acknowledged only after the
 * primary flushed it, through a connection that was open. The old primary's flushed position read
 * after that moment is therefore at or past every commit it ever acknowledged, and a standby that
 * has reached it holds them all.
 *
 * "Read after" is judged from the agent's report: it must have been probed under the fence's version
 * (its heartbeat says which version its positions were probed under), and sent more than
 * `FENCED_READ_MARGIN_MS` after the controller saw the last writer fenced, dated by the agent's own
 * clock (a report held back on the way does not count as late). While a cell is fenced its agents
 * probe every 200 ms and heartbeat right after, so a report sent that long after carries a probe
 * made after the last writer closed.
 *
 * Switchovers (switchover.ts) and failovers (failover.ts) both use it: the same rule in one place.
 */
import { parseLsn } from "../lib/lsn.js";
import type { Evidence } from "./evidence.js";
import type { WorldIndex } from "./world-index.js";

/** How long after the last writer was seen fenced the old primary's report must have been sent. */
export const FENCED_READ_MARGIN_MS = 250;

/** Whether every agent holding a writer endpoint of `cell` reports running `fenceVersion` or later. */
export function writersFenced(
  index: WorldIndex,
  evidence: Evidence,
  cell: string,
  fenceVersion: number,
): boolean {
  const zones = new Set(index.layout.writers.filter((w) => w.cell === cell).map((w) => w.zone));
  return [...zones].every((zone) => (evidence.agentVersion(zone) ?? 0) >= fenceVersion);
}

/**
 * The flushed position of the database slot `id` (the old primary) from a report that counts as
 * read after every writer was fenced at `writersFencedAtMs` under `fenceVersion` (see the file
 * header); undefined while there is none. It must still report itself primary.
 */
export function fencedPrimaryFlush(
  evidence: Evidence,
  id: string,
  fenceVersion: number,
  writersFencedAtMs: number | undefined,
): bigint | undefined {
  if (writersFencedAtMs === undefined) return undefined;
  const heard = evidence.database(id);
  if (
    heard === undefined ||
    heard.report.role !== "primary" ||
    heard.version < fenceVersion ||
    heard.sentAtMs <= writersFencedAtMs + FENCED_READ_MARGIN_MS
  ) {
    return undefined;
  }
  return parseLsn(heard.report.flushLsn ?? heard.report.lsn);
}
