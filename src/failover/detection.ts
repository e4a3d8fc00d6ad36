/**
 * When a cell's primary counts as failed. Pure: it sees what agents reported and the time, nothing
 * else, so the rule can be tested exhaustively.
 *
 * Observers (the agents of other regions) probe every primary through the WAN and report in their
 * heartbeats. The primary is declared failed only when observers in at least `observerRegions`
 * other regions agree it is unreachable, each with fresh reports and `failuresToDeclare` failed
 * probes in a row, and no fresh report from any other region reaches it. The primary's own agent is
 * not needed for the verdict (its region may be partitioned away with the primary still running,
 * and that must fail over), but when it says the database is down the observers need only
 * `failuresWhenAgentDown` failed probes each, which makes a dead database fail over sooner.
 * Every number comes from the topology's `failover.detection` (see settings.ts).
 *
 * Fresh means *observed* within `freshMs`, not received: every `atMs` here is when the
 * observation was made, on the controller's clock, as `observer-reports.ts` dates it from the
 * observer's own monotonic clock. A report that arrives late (its observer was paused, its host
 * starved, the network queued it, the controller itself was paused) is as old as what it saw, so it
 * cannot stand in for a fresh one; and an observer whose reports show a gap counts again only with
 * probes observed after the gap, its failure streak cut at the gap.
 *
 * A primary that no report has shown up since the controller started is in its start-up grace
 * (`failover.startupGrace`, 60 s by default): a world that starts creates and starts every database
 * at once, and on a small or starved machine the first probes time out; failing such a primary over
 * would promote a standby of a database that never failed. The grace ends at the first report that
 * shows the primary up, or when it runs out, so a primary that is really dead when the controller
 * starts is failed over at most the grace later.
 *
 * An observer is a witness only while it reaches something: when it probes primaries in other
 * regions too and has reached none of them within the freshness window, its failures count for
 * nothing (the observer, or the network it probes through, is the one in trouble: a local world's
 * WAN emulator starved of CPU makes every probe fail at once, and so does an observer's own broken
 * link). Losing a whole region leaves the observers of the other regions reaching each other's
 * primaries, so that loss is still declared. An observer with nothing else to probe counts as before.
 *
 * What this protects against: a partition that isolates only the controller leaves it with no fresh
 * observations at all, so nothing is declared; a partition between the primary and one observer
 * leaves the other observers reaching it, so nothing is declared; a paused observer, or a paused
 * controller, brings only old observations when it resumes, which count for nothing, so nothing is
 * declared until observers in two regions have failed to reach the primary afresh.
 */

/** One observer zone's latest probe of a primary. */
export interface Probe {
  /** The observer's zone (`us-west/a`). */
  readonly observer: string;
  /** The observer's region. */
  readonly region: string;
  /** Whether the last probe reached the primary. */
  readonly ok: boolean;
  /** Failed probes in a row, up to the last one (0 when it succeeded), counting none before a gap. */
  readonly consecutiveFailures: number;
  /** When the probe observed its result, on the controller's clock, in ms (not when it arrived). */
  readonly atMs: number;
  /**
   * False when the observer probes primaries in other regions too and reached none of them within
   * the freshness window: it may be the one cut off (or starved), so its failures say nothing about
   * this primary. Undefined (counts as true) when it has nothing else to probe.
   */
  readonly witness?: boolean | undefined;
}

/** What the controller knows about one cell's primary. */
export interface PrimaryEvidence {
  readonly cell: string;
  readonly primaryRegion: string;
  /** The primary's agent's last report of its database, and when it was sent; undefined when never. */
  readonly agent?: { readonly databaseUp: boolean; readonly atMs: number } | undefined;
  /** The latest probe from each observer zone. */
  readonly probes: readonly Probe[];
  /**
   * Set while the primary is in its start-up grace: no report since the controller started has
   * shown it up, and the grace (`failover.startupGrace` after that start) has not run out. Until
   * then, failed probes make it suspect, never failed.
   */
  readonly startupGraceUntilMs?: number | undefined;
}

/** The rule's numbers: `topology.failover.detection`, derived from `failover.detection` (settings.ts). */
export interface DetectionOptions {
  /** Distinct other regions whose observers must agree. */
  readonly observerRegions: number;
  /** Failed probes in a row each observer needs. */
  readonly failuresToDeclare: number;
  /** Failed probes in a row each observer needs when the primary's agent says its database is down. */
  readonly failuresWhenAgentDown: number;
  /** How long ago a result may have been observed and still count, in ms. */
  readonly freshMs: number;
}

export type Verdict =
  | { readonly state: "healthy" }
  | { readonly state: "suspect"; readonly reason: string }
  | { readonly state: "failed"; readonly reason: string; readonly regions: readonly string[] };

/** Judges one primary from the evidence at `nowMs`. */
export function judgePrimary(evidence: PrimaryEvidence, nowMs: number, options: DetectionOptions): Verdict {
  const needed = options.observerRegions;
  const freshMs = options.freshMs;
  const agentFresh = evidence.agent !== undefined && nowMs - evidence.agent.atMs <= freshMs;
  const agentSaysDown = agentFresh && evidence.agent?.databaseUp === false;
  const failures = agentSaysDown ? options.failuresWhenAgentDown : options.failuresToDeclare;
  const fresh = evidence.probes.filter(
    (p) => p.region !== evidence.primaryRegion && nowMs - p.atMs <= freshMs,
  );
  const reaching = new Set(fresh.filter((p) => p.ok).map((p) => p.region));
  if (reaching.size > 0) {
    const failing = fresh.filter((p) => !p.ok).map((p) => p.observer);
    return failing.length === 0
      ? { state: "healthy" }
      : {
          state: "suspect",
          reason: `unreachable from ${failing.join(", ")} but reached from ${[...reaching].join(", ")}`,
        };
  }
  // A region counts when every fresh observer in it that is a witness (it reaches some other
  // region's primary) has failed enough probes in a row.
  const byRegion = new Map<string, boolean>();
  for (const p of fresh) {
    if (p.witness === false) continue;
    byRegion.set(p.region, (byRegion.get(p.region) ?? true) && p.consecutiveFailures >= failures);
  }
  const agreeing = [...byRegion].filter(([, agree]) => agree).map(([region]) => region);
  if (
    agreeing.length >= needed &&
    evidence.startupGraceUntilMs !== undefined &&
    nowMs < evidence.startupGraceUntilMs
  ) {
    return {
      state: "suspect",
      reason: `unreachable from ${agreeing.length} other regions, but not yet seen up since the controller started (start-up grace for ${Math.ceil((evidence.startupGraceUntilMs - nowMs) / 1000)} s more)`,
    };
  }
  if (agreeing.length >= needed) {
    return {
      state: "failed",
      regions: agreeing,
      reason: `unreachable from ${agreeing.length} other regions (${agreeing.join(", ")})${agentSaysDown ? "; its agent reports the database down" : ""}`,
    };
  }
  if (fresh.length === 0) {
    return agentSaysDown
      ? { state: "suspect", reason: "its agent reports the database down; no observer has reported yet" }
      : agentFresh
        ? { state: "healthy" }
        : { state: "suspect", reason: "no fresh report from its agent or any observer" };
  }
  return {
    state: "suspect",
    reason: `unreachable from ${agreeing.length} of the ${needed} other regions needed (${[...byRegion.keys()].join(", ")} reporting)`,
  };
}
