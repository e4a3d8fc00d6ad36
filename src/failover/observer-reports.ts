/**
 * Observers' probe reports turned into probes dated by when they were observed, on the
 * controller's clock. Pure: it sees reports and the times they were received, nothing else.
 *
 * An observer sends with each report its own monotonic time (`sentMonoMs`) and, per probe, the
 * result's age on that clock (`ageMs`). The controller never trusts receipt as observation time: a
 * report that was delayed (its sender paused, the network queued it, the controller was paused)
 * would look fresh. Instead it maps the observer's clock onto its own with the smallest
 * `receivedAt − sentMono` seen from that observer process: that offset exceeds the true one only by
 * the fastest transit seen (milliseconds), never by a late report's delay, so a late report is dated
 * by when it was observed. The offset may creep up by `driftPerMs` (0.1 %) of the time since the
 * last report, so that clocks that drift apart are followed; a late report meanwhile gains at most
 * that creep.
 *
 * Pauses. When an observer's reports show a gap of more than `gapMs` (default 3 s, the freshness
 * window) in its own send times, it was paused, starved, or cut off from the controller: no failure
 * it observed before the report that shows the gap counts any more, and a failure streak that may
 * have begun before it counts only its failures observed after it (a frozen observer's probes all
 * time out at once when it resumes). A success counts whenever it was observed, while fresh: it is
 * never an artefact of a pause, and dropping it could only make a verdict of "failed" likelier.
 * Reordered and duplicated reports never replace a newer observation.
 */

import type { Probe } from "./detection.js";

/** One probe result as an observer reports it. */
export interface ReportedProbe {
  /** The database slot probed, `cell-0/us-east`. */
  readonly target: string;
  readonly ok: boolean;
  readonly consecutiveFailures: number;
  /** How long before `sentMonoMs` the result was observed; absent from older agents. */
  readonly ageMs?: number | undefined;
}

/** Who sent a report, and when on its own clock. */
export interface ReportSender {
  /** The observer's zone (`us-west/a`). */
  readonly observer: string;
  readonly region: string;
  /** The observer process (pid and start): its monotonic clock is its own. */
  readonly session: string;
  /** The observer's monotonic time when it sent the report; absent from older agents. */
  readonly sentMonoMs?: number | undefined;
}

export interface ObserverReportsOptions {
  /** A gap in an observer's own send times longer than this means it was paused. Default 3 s. */
  readonly gapMs?: number;
  /** How fast the clock offset may creep up, per ms of controller time. Default 0.001. */
  readonly driftPerMs?: number;
}

interface Session {
  readonly id: string;
  offsetMs: number;
  lastReceivedAtMs: number;
  lastSentMonoMs: number;
  /** Observer time from which its observations count (after its last gap). */
  resumedAtMonoMs: number;
}

interface Held {
  readonly target: string;
  readonly probe: Probe;
  /** The reported streak length, before any discount. */
  readonly reportedFailures: number;
  /** Failures of the streak observed before the observer's last gap (not counted). */
  readonly discount: number;
  /** Observation time on the observer's clock; undefined from older agents. */
  readonly monoMs: number | undefined;
}

export class ObserverReports {
  readonly #gapMs: number;
  readonly #driftPerMs: number;
  #sessions = new Map<string, Session>();
  /** `${observer}|${target}` → the newest observation. */
  #held = new Map<string, Held>();

  constructor(options: ObserverReportsOptions = {}) {
    this.#gapMs = options.gapMs ?? 3_000;
    this.#driftPerMs = options.driftPerMs ?? 0.001;
    if (!(this.#gapMs > 0)) throw new RangeError(`ObserverReports.gapMs must be > 0, got ${this.#gapMs}`);
    if (!(this.#driftPerMs >= 0))
      throw new RangeError(`ObserverReports.driftPerMs must be >= 0, got ${this.#driftPerMs}`);
  }

  /**
   * Takes in one report received at `receivedAtMs` (controller clock). Returns when it was sent on
   * the controller's clock (the receipt time for older agents that send no clock).
   */
  receive(sender: ReportSender, probes: readonly ReportedProbe[], receivedAtMs: number): number {
    const { observer, region, sentMonoMs } = sender;
    if (sentMonoMs === undefined) {
      // An older agent: receipt is all there is.
      for (const p of probes) {
        const probe = { observer, region, ok: p.ok, consecutiveFailures: p.ok ? 0 : p.consecutiveFailures };
        this.#held.set(`${observer}|${p.target}`, {
          target: p.target,
          probe: { ...probe, atMs: receivedAtMs },
          reportedFailures: probe.consecutiveFailures,
          discount: 0,
          monoMs: undefined,
        });
      }
      return receivedAtMs;
    }
    const session = this.#session(sender, sentMonoMs, receivedAtMs);
    for (const p of probes) this.#take(sender, session, sentMonoMs - Math.max(0, p.ageMs ?? 0), p);
    return sentMonoMs + session.offsetMs;
  }

  #session(sender: ReportSender, sentMonoMs: number, receivedAtMs: number): Session {
    const known = this.#sessions.get(sender.observer);
    if (known === undefined || known.id !== sender.session) {
      // A new observer process: what its predecessor reported is on another clock.
      for (const key of [...this.#held.keys()])
        if (key.startsWith(`${sender.observer}|`)) this.#held.delete(key);
      const session: Session = {
        id: sender.session,
        offsetMs: receivedAtMs - sentMonoMs,
        lastReceivedAtMs: receivedAtMs,
        lastSentMonoMs: sentMonoMs,
        resumedAtMonoMs: Number.NEGATIVE_INFINITY,
      };
      this.#sessions.set(sender.observer, session);
      return session;
    }
    const creep = Math.max(0, receivedAtMs - known.lastReceivedAtMs) * this.#driftPerMs;
    known.offsetMs = Math.min(known.offsetMs + creep, receivedAtMs - sentMonoMs);
    known.lastReceivedAtMs = Math.max(known.lastReceivedAtMs, receivedAtMs);
    if (sentMonoMs > known.lastSentMonoMs) {
      if (sentMonoMs - known.lastSentMonoMs > this.#gapMs) {
        known.resumedAtMonoMs = sentMonoMs;
        for (const [key, held] of this.#held)
          if (key.startsWith(`${sender.observer}|`) && !held.probe.ok && (held.monoMs ?? 0) < sentMonoMs)
            this.#held.delete(key);
      }
      known.lastSentMonoMs = sentMonoMs;
    }
    return known;
  }

  #take(sender: ReportSender, session: Session, monoMs: number, p: ReportedProbe): void {
    // A failure observed before the observer's last gap may be its own pause (timeouts that fire
    // when it resumes); a success is true whenever it was seen, and still counts while fresh.
    if (!p.ok && monoMs < session.resumedAtMonoMs) return;
    const key = `${sender.observer}|${p.target}`;
    const prev = this.#held.get(key);
    // Reordered or duplicated: a newer observation is already held.
    if (prev?.monoMs !== undefined && prev.monoMs >= monoMs) return;
    const reportedFailures = p.ok ? 0 : p.consecutiveFailures;
    const resumed = session.resumedAtMonoMs;
    const prevCounts = prev?.monoMs !== undefined && prev.monoMs >= resumed;
    let discount = 0;
    if (!p.ok && resumed !== Number.NEGATIVE_INFINITY) {
      if (prevCounts && prev !== undefined && !prev.probe.ok && reportedFailures > prev.reportedFailures) {
        discount = prev.discount; // the same streak, begun where the held one says
      } else if (!prevCounts) {
        discount = Math.max(0, reportedFailures - 1); // it may have begun before the gap
      } // else: the streak began after an observation made since the gap
    }
    this.#held.set(key, {
      target: p.target,
      probe: {
        observer: sender.observer,
        region: sender.region,
        ok: p.ok,
        consecutiveFailures: reportedFailures - discount,
        atMs: monoMs + session.offsetMs,
      },
      reportedFailures,
      discount,
      monoMs,
    });
  }

  /** The newest counted observation of `target` from each observer zone. */
  probes(target: string): Probe[] {
    return [...this.#held.values()].filter((h) => h.target === target).map((h) => h.probe);
  }

  /**
   * Whether `observer` reached a target outside `region`, among its observations made at or after
   * `sinceMs` (the controller's clock); undefined when it made none of a target outside `region`
   * since then (it probes nothing else now: a target it no longer probes, a database that is no
   * longer a primary, is not held against it). Targets are `cell/region` slot ids.
   */
  reachedElsewhere(observer: string, region: string, sinceMs: number): boolean | undefined {
    let probesElsewhere = false;
    for (const h of this.#held.values()) {
      if (h.probe.observer !== observer || h.target.endsWith(`/${region}`) || h.probe.atMs < sinceMs)
        continue;
      if (h.probe.ok) return true;
      probesElsewhere = true;
    }
    return probesElsewhere ? false : undefined;
  }
}
