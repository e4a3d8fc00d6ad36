/**
 * What the controller has heard that failover decides on, kept in memory as heartbeats arrive:
 * each observer zone's latest probe of each primary, each database's latest report, and each cell's
 * replication history (the primary's flushed position, sampled about once a second, five minutes
 * kept). After a controller restart it fills again within seconds; nothing here must outlive that.
 */

import { parseQuorum, type Quorum, type StandbyPosition } from "../failover/decision.js";
import type { PrimaryEvidence } from "../failover/detection.js";
import type { PositionSample } from "../failover/estimate.js";
import { ObserverReports } from "../failover/observer-reports.js";
import { parseLsn } from "../lib/lsn.js";
import type { DatabaseReport } from "../world/contracts.js";
import type { AgentReport } from "./store-records.js";
import type { WorldIndex } from "./world-index.js";

const HISTORY_KEPT = 300;
const SAMPLE_EVERY_MS = 900;

interface Heard<T> {
  readonly value: T;
  readonly atMs: number;
  /** When the agent sent it, on the controller's clock (by the agent's monotonic clock). */
  readonly sentAtMs: number;
  readonly zone: string;
  /** The desired version the agent had applied when it probed (its heartbeat's `desiredVersion`). */
  readonly version: number;
}

export class Evidence {
  readonly #index: WorldIndex;
  /** Each observer zone's newest probe of each primary, dated by when it was observed. */
  readonly #probes: ObserverReports;
  /** Database slot id → its latest report. */
  #databases = new Map<string, Heard<DatabaseReport>>();
  /** Zone → the desired version its agent last said it runs, and when. */
  #agents = new Map<string, { version: number; atMs: number }>();
  /** Cell → samples of its primary's flushed position. */
  #history = new Map<string, PositionSample[]>();
  /** Database slots some report has shown up (a primary's own agent, or an observer reaching it). */
  readonly #seenUp = new Set<string>();
  /** When this controller's start-up grace ends (`failover.startupGrace` after it started). */
  readonly #graceUntilMs: number;

  constructor(index: WorldIndex, startedAtMs: number) {
    this.#index = index;
    this.#graceUntilMs = startedAtMs + index.topology.failover.startupGraceMs;
    // A gap longer than the freshness window cuts an observer's streak: the topology's number.
    this.#probes = new ObserverReports({ gapMs: index.topology.failover.detection.freshMs });
  }

  /** Takes in one agent heartbeat received at `atMs`. */
  observe(zone: string, report: AgentReport, atMs: number): void {
    const region = zone.split("/")[0] as string;
    this.#agents.set(zone, { version: report.desiredVersion, atMs });
    const sentAtMs = this.#probes.receive(
      { observer: zone, region, session: `${report.pid}@${report.startedAt}`, sentMonoMs: report.sentMonoMs },
      report.observations ?? [],
      atMs,
    );
    for (const o of report.observations ?? []) if (o.ok) this.#seenUp.add(o.target);
    for (const d of report.databases) {
      this.#databases.set(d.id, { value: d, atMs, sentAtMs, zone, version: report.desiredVersion });
      if (d.role === "primary") this.#seenUp.add(d.id);
      if (d.role !== "primary") continue;
      const cell = this.#index.layout.databases.find((x) => x.id === d.id)?.cell;
      const lsn = parseLsn(d.flushLsn ?? d.lsn);
      if (cell === undefined || lsn === undefined) continue;
      const samples = this.#history.get(cell) ?? [];
      const last = samples[samples.length - 1];
      if (last !== undefined && atMs - last.atMs < SAMPLE_EVERY_MS) continue;
      samples.push({ atMs, lsn });
      if (samples.length > HISTORY_KEPT) samples.splice(0, samples.length - HISTORY_KEPT);
      this.#history.set(cell, samples);
    }
  }

  /**
   * What detection needs about the cell's primary in `primaryRegion` at `nowMs`: each observer's
   * probe marked with whether it is a witness (it reached another region's primary lately).
   */
  primary(cell: string, primaryRegion: string, nowMs: number): PrimaryEvidence {
    const target = `${cell}/${primaryRegion}`;
    const { freshMs } = this.#index.topology.failover.detection;
    const own = this.#databases.get(target);
    return {
      cell,
      primaryRegion,
      probes: this.#probes.probes(target).map((p) => ({
        ...p,
        witness: this.#probes.reachedElsewhere(p.observer, primaryRegion, nowMs - freshMs),
      })),
      // Dated by when it was sent: a late "down" from a paused agent must not speed up a verdict.
      agent: own === undefined ? undefined : { databaseUp: own.value.role === "primary", atMs: own.sentAtMs },
      startupGraceUntilMs: this.#seenUp.has(target) ? undefined : this.#graceUntilMs,
    };
  }

  /** The quorum the cell's primary in `primaryRegion` last reported committing with. */
  quorum(cell: string, primaryRegion: string): Quorum | undefined {
    const own = this.#databases.get(`${cell}/${primaryRegion}`);
    return own === undefined ? undefined : parseQuorum(own.value.synchronousStandbyNames);
  }

  /**
   * The positions of the cell's instances outside `primaryRegion`, counting only reports received
   * after `sinceMs` (a standby stops receiving once its primary is gone, so a report from
   * after the failure is its final position).
   */
  standbys(cell: string, primaryRegion: string, sinceMs: number): StandbyPosition[] {
    return this.#index.layout.databases
      .filter((d) => d.cell === cell && d.region !== primaryRegion)
      .map((d) => {
        const heard = this.#databases.get(d.id);
        const fresh = heard !== undefined && heard.atMs > sinceMs && heard.value.role === "standby";
        return {
          name: d.applicationName,
          region: d.region,
          flushLsn: fresh ? parseLsn(heard.value.flushLsn ?? heard.value.lsn) : undefined,
        };
      });
  }

  /**
   * The latest report of one database slot: when it was received, when it was sent (on the
   * controller's clock, by the agent's), and the desired version it was probed under.
   */
  database(
    id: string,
  ): { report: DatabaseReport; atMs: number; sentAtMs: number; version: number } | undefined {
    const heard = this.#databases.get(id);
    return heard === undefined
      ? undefined
      : { report: heard.value, atMs: heard.atMs, sentAtMs: heard.sentAtMs, version: heard.version };
  }

  /** The desired version a zone's agent last said it runs (undefined when never heard). */
  agentVersion(zone: string): number | undefined {
    return this.#agents.get(zone)?.version;
  }

  /** The cell's sampled replication history, oldest first. */
  history(cell: string): readonly PositionSample[] {
    return this.#history.get(cell) ?? [];
  }
}
