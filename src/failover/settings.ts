/**
 * How `failover.detection` becomes the runtime's detection settings: the agents' probe interval and
 * timeout, the failed probes in a row the controller needs, and how old a report may be. Pure and
 * computed once, by the topology compiler: the planner, the controller and the agents all read the
 * result from the compiled topology (`topology.failover.detection`), so no runtime constant can
 * disagree with the file.
 *
 * The arithmetic. A primary that stops answering is declared once observers have failed N probes
 * in a row. A failed probe costs at most one probe period P = interval + timeout (a hung primary
 * holds the probe for the whole timeout, and the next one starts on the next round), and once the
 * N-th has failed the observer heartbeats at once and the controller judges on receipt, which
 * `DELIVERY_SLACK_MS` covers (≤ 100 ms heartbeat coalescing, the WAN, one reconcile pass). So the
 * verdict comes within W = N × P + slack, and the rule picks N and P so that W ≤ detection:
 *
 * - P is at most the default 500 ms interval + 800 ms timeout (1300 ms): probing faster than that
 *   gains nothing for a long detection, it only costs probes.
 * - N is as many whole periods as fit in detection − slack, at least 2 (one lost probe never fails a
 *   primary over). A longer detection therefore means more failed probes in a row, not slower
 *   probes: a WAN blip shorter than the detection never declares anything.
 * - When even 2 periods of 1300 ms do not fit (detection below 3 s), the period shrinks to
 *   (detection − slack) / 2, split 5 : 8 between interval and timeout as the defaults are.
 * - With the primary's own agent reporting its database down, half as many failures (at least 1)
 *   suffice: the agent's report stands in for the rest.
 * - A report is fresh for one heartbeat interval (1 s, the agents' period) + one probe period +
 *   `FRESH_MARGIN_MS`: long enough that a healthy observer's latest report is always fresh, short
 *   enough that a silent one stops counting soon.
 *
 * The default `detection: 3s` gives exactly what the runtime used before the derivation: probes
 * every 500 ms with 800 ms timeouts, 2 failures (1 with the agent's word), reports fresh for 3 s.
 * `detection: 10s` gives 7 failures (3 with the agent's word), declared within 9.5 s.
 */

/** The delivery of the deciding report and one reconcile pass, in ms. */
export const DELIVERY_SLACK_MS = 400;
/** The agents' heartbeat period, in ms (a report waits at most this long for its heartbeat). */
export const HEARTBEAT_INTERVAL_MS = 1_000;
/** Added to a report's freshness window beyond a heartbeat and a probe period, in ms. */
export const FRESH_MARGIN_MS = 700;
/** The longest probe interval and timeout: the period used whenever the detection leaves room. */
export const MAX_PROBE_INTERVAL_MS = 500;
export const MAX_PROBE_TIMEOUT_MS = 800;
/** The shortest probe timeout a detection may lead to (below it healthy probes would time out). */
export const MIN_PROBE_TIMEOUT_MS = 200;
/** Distinct other regions whose observers must agree (not derived: it is what makes a partition safe). */
export const OBSERVER_REGIONS = 2;

/** The runtime's detection settings, derived from `failover.detection` by `detectionSettings`. */
export interface DetectionSettings {
  /** Distinct other regions whose observers must agree that the primary is unreachable. */
  readonly observerRegions: number;
  /** Failed probes in a row each agreeing observer needs. */
  readonly failuresToDeclare: number;
  /** The same when the primary's own agent reports its database down. */
  readonly failuresWhenAgentDown: number;
  /** How old a report may be and still count, in ms. */
  readonly freshMs: number;
  /** Time between an agent's probe rounds, in ms. */
  readonly probeIntervalMs: number;
  /** Connection and query timeout of one probe, in ms. */
  readonly probeTimeoutMs: number;
  /** The latest the verdict comes after a primary stops answering (≤ `failover.detection`), in ms. */
  readonly declaredWithinMs: number;
}

/** The shortest `failover.detection` that leaves probes a timeout of `MIN_PROBE_TIMEOUT_MS`. */
export const MIN_DETECTION_MS =
  DELIVERY_SLACK_MS +
  2 *
    Math.ceil((MIN_PROBE_TIMEOUT_MS * (MAX_PROBE_INTERVAL_MS + MAX_PROBE_TIMEOUT_MS)) / MAX_PROBE_TIMEOUT_MS);

/**
 * The detection settings for a `failover.detection` of `detectionMs` (see the file header for the
 * arithmetic). Throws a RangeError below `MIN_DETECTION_MS`; the topology validator reports that as
 * an error on `failover.detection` first.
 */
export function detectionSettings(detectionMs: number): DetectionSettings {
  if (!Number.isFinite(detectionMs) || detectionMs < MIN_DETECTION_MS) {
    throw new RangeError(
      `failover.detection must be at least ${MIN_DETECTION_MS} ms (probes need a timeout of ${MIN_PROBE_TIMEOUT_MS} ms or more), got ${detectionMs}`,
    );
  }
  const maxPeriod = MAX_PROBE_INTERVAL_MS + MAX_PROBE_TIMEOUT_MS;
  const budget = detectionMs - DELIVERY_SLACK_MS;
  const failures = Math.max(2, Math.floor(budget / maxPeriod));
  // Whole milliseconds, rounded down so that the bound still holds.
  const period = Math.min(maxPeriod, Math.floor(budget / failures));
  const interval = Math.floor((period * MAX_PROBE_INTERVAL_MS) / maxPeriod);
  const timeout = period - interval;
  return {
    observerRegions: OBSERVER_REGIONS,
    failuresToDeclare: failures,
    failuresWhenAgentDown: Math.max(1, Math.floor(failures / 2)),
    freshMs: HEARTBEAT_INTERVAL_MS + period + FRESH_MARGIN_MS,
    probeIntervalMs: interval,
    probeTimeoutMs: timeout,
    declaredWithinMs: failures * period + DELIVERY_SLACK_MS,
  };
}
