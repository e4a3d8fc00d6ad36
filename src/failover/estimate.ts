/**
 * How much a failover without proof might lose, from the replication history the controller samples
 * every second: the old primary's WAL position over time. Pure.
 *
 * The best surviving standby holds WAL up to `survivorFlush`. Everything the old primary wrote past
 * that may have been acknowledged (through a standby that did not answer) and is at risk:
 * - bytes: the primary's last sampled position minus the survivor's (at least 0), a lower bound
 *   because the primary may have written more after its last sample;
 * - seconds of writes: from the last sample the survivor had already reached to the failure, an
 *   upper bound on the window in which acknowledged writes may be missing.
 */

/** One sample of the primary's WAL position. */
export interface PositionSample {
  readonly atMs: number;
  readonly lsn: bigint;
}

export interface LossEstimate {
  /** WAL bytes past the survivor, as last sampled (at least this many may be lost). */
  readonly bytes: number;
  /** Length of the window of writes that may be lost, in seconds (at most this long). */
  readonly seconds: number;
  /** How the figures were reached, for the consent prompt and the event log. */
  readonly basis: string;
}

/** Estimates the loss of promoting a standby at `survivorFlush` after a failure at `failedAtMs`. */
export function estimateLoss(
  history: readonly PositionSample[],
  survivorFlush: bigint,
  failedAtMs: number,
): LossEstimate {
  const samples = history.filter((s) => s.atMs <= failedAtMs);
  const last = samples[samples.length - 1];
  if (last === undefined) {
    return {
      bytes: 0,
      seconds: 0,
      basis: "no replication history was sampled before the failure: the loss cannot be estimated",
    };
  }
  const bytes = last.lsn > survivorFlush ? Number(last.lsn - survivorFlush) : 0;
  let covered: PositionSample | undefined;
  for (let i = samples.length - 1; i >= 0; i--) {
    const s = samples[i] as PositionSample;
    if (s.lsn <= survivorFlush) {
      covered = s;
      break;
    }
  }
  const first = samples[0] as PositionSample;
  const from = covered ?? first;
  const seconds = Math.max(0, (failedAtMs - from.atMs) / 1000);
  return {
    bytes,
    seconds,
    basis: covered
      ? `the survivor had every WAL byte the primary had written ${seconds.toFixed(1)} s before the failure; ${bytes} bytes written after that were not on it at the last sample`
      : `the survivor is behind every sample kept (${samples.length}, from ${((failedAtMs - first.atMs) / 1000).toFixed(1)} s before the failure): at least that long may be lost`,
  };
}
