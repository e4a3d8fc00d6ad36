/**
 * The loss of a consented failover, measured once it can be: the operator accepted an estimate of
 * what the promoted standby lacked; when the standbys that were missing come back, each reports
 * how far its own WAL went, and what lies past the promoted position is what the failover lost.
 * The measurement is recorded as an event (`failover.loss-measured`) and in the failover's history
 * record (`lossFound`). Standbys are waited for an hour ({@link LOSS_WATCH_MS}). What is watched
 * lives in the history, so a controller restarted in between still measures the loss.
 */
import { parseLsn } from "../lib/lsn.js";
import type { CellStore } from "./cell-store.js";
import type { Evidence } from "./evidence.js";
import { event, type FailoverRecord } from "./failover-record.js";

/** How long after a consented failover its missing standbys are waited for, to measure the loss. */
export const LOSS_WATCH_MS = 3_600_000;

interface Watched {
  readonly record: FailoverRecord;
  readonly completedAtMs: number;
}

export class LossWatch {
  readonly #cells: CellStore;
  readonly #evidence: Evidence;
  readonly #clock: () => number;
  readonly #watching = new Map<string, Watched>();
  /** Rebuilt from the failover history (once, at the first pass that reaches the database). */
  #loaded = false;

  constructor(deps: { cells: CellStore; evidence: Evidence; clock: () => number }) {
    this.#cells = deps.cells;
    this.#evidence = deps.evidence;
    this.#clock = deps.clock;
  }

  /** Watches the consented failover of `cell` that completed at `completedAtMs`. */
  watch(cell: string, record: FailoverRecord, completedAtMs: number): void {
    this.#watching.set(cell, { record, completedAtMs });
  }

  /** Measures every watched failover whose missing standbys are all back. */
  async pass(): Promise<void> {
    for (const [cell, watched] of this.#watching) await this.#measure(cell, watched);
  }

  /**
   * The loss watch as the history leaves it: a controller restarted between a consented failover
   * and the return of its missing standbys still measures the loss.
   */
  async load(): Promise<void> {
    if (this.#loaded) return;
    for (const c of await this.#cells.unmeasuredConsents(this.#clock() - LOSS_WATCH_MS)) {
      if (!this.#watching.has(c.cell))
        this.#watching.set(c.cell, {
          record: c.record as unknown as FailoverRecord,
          completedAtMs: c.finishedAtMs,
        });
    }
    this.#loaded = true;
  }

  /**
   * After a consented failover, a missing standby that returns reports how far its own WAL went;
   * what lies past the promoted position is what the failover lost. Recorded as an event and in
   * the history record. Watched for an hour ({@link LOSS_WATCH_MS}); the watch is rebuilt from the
   * history when the controller restarts.
   */
  async #measure(cell: string, watch: Watched): Promise<void> {
    const promoted = parseLsn(watch.record.decision?.flushLsn);
    const missing = watch.record.consent?.missing ?? [];
    if (
      promoted === undefined ||
      missing.length === 0 ||
      this.#clock() - watch.completedAtMs > LOSS_WATCH_MS
    ) {
      this.#watching.delete(cell);
      return;
    }
    const found: Record<string, number> = {};
    const oldTimeline = watch.record.consent?.timeline;
    for (const slot of missing) {
      const heard = this.#evidence.database(slot);
      if (!heard || heard.atMs <= watch.completedAtMs) return; // not back yet
      const end = parseLsn(heard.report.lsn) ?? parseLsn(heard.report.flushLsn);
      if (end === undefined) return;
      const timeline = heard.report.timeline;
      // On the old timeline its WAL end is what it held; already on the new one, it followed the
      // promoted standby without a rewind, so it held nothing past the fork.
      const onOld =
        oldTimeline === undefined || oldTimeline === null || timeline === null || timeline === undefined
          ? true
          : timeline <= oldTimeline;
      found[slot] = onOld && end > promoted ? Number(end - promoted) : 0;
    }
    this.#watching.delete(cell);
    const bytes = Math.max(0, ...Object.values(found));
    await this.#cells.annotate(cell, watch.record.startedAtMs, { lossFound: found });
    await this.#cells.update(cell, {}, [
      event(
        "failover.loss-measured",
        cell,
        `the standbys missing at the consented failover of ${cell} are back: ${bytes} bytes of WAL past the promoted position were lost (estimated ${watch.record.estimate?.bytes ?? "?"} bytes)`,
        { lossFound: found, bytes, estimate: watch.record.estimate ?? null },
      ),
    ]);
  }
}
