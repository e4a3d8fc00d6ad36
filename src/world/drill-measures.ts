/**
 * What drills compute from what they saw: write pauses from a ledger's acknowledged writes,
 * percentiles, and how figures are printed. Pure: no world, no clock.
 */

/** One acknowledged write as a drill reads it back from a ledger. */
export interface Ack {
  readonly cell: string;
  /** When the load saw it acknowledged (ms since the epoch). */
  readonly atMs: number;
}

/** The write pause of a cell around an event: the last acknowledgement before it and the first after. */
export interface WriteGap {
  readonly lastBeforeMs: number;
  /** NaN when no write of the cell was acknowledged after. */
  readonly firstAfterMs: number;
  readonly pauseMs: number;
}

/**
 * The longest gap between consecutive acknowledged writes of `cell` that overlaps `[fromMs, toMs]`
 * (say, from the fence to the unfence): the pause its clients saw. Taking the gap rather than the
 * first acknowledgement after `fromMs` keeps a write that committed just before the event, and
 * whose answer was still on its way, from hiding the pause. Undefined when the cell had no
 * acknowledged write up to `toMs`.
 */
export function writeGap(
  acks: readonly Ack[],
  cell: string,
  fromMs: number,
  toMs: number,
): WriteGap | undefined {
  const times = acks.filter((a) => a.cell === cell).map((a) => a.atMs);
  let best: WriteGap | undefined;
  for (let i = 0; i < times.length; i++) {
    const before = times[i] as number;
    if (before > toMs) break;
    const after = times[i + 1] ?? Number.NaN;
    if (!Number.isNaN(after) && after < fromMs) continue;
    const pauseMs = Number.isNaN(after) ? Number.POSITIVE_INFINITY : after - before;
    if (best === undefined || pauseMs > best.pauseMs)
      best = { lastBeforeMs: before, firstAfterMs: after, pauseMs };
  }
  return best;
}

/** The value at quantile `q` (0..1) of `values`, nearest rank; NaN when there are none. */
export function percentile(values: readonly number[], q: number): number {
  if (values.length === 0) return Number.NaN;
  // A NaN is something that never happened: it counts as the worst.
  const sorted = values.map((v) => (Number.isNaN(v) ? Number.POSITIVE_INFINITY : v)).sort((a, b) => a - b);
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil(q * sorted.length)));
  return sorted[rank - 1] as number;
}

/** Milliseconds as seconds with two decimals (`NEVER` for NaN). */
export function seconds(ms: number): string {
  return Number.isFinite(ms) ? `${(ms / 1000).toFixed(2)} s` : "NEVER";
}
