/**
 * Planned moves of a cell's primary: a switchover an operator asks for (`ringfence switchover`), and
 * failback, the switchover the reconciler starts on its own once a failed-over cell's home region has
 * been healthy and caught up for the stability window. First the cell's other standbys move to
 * stream from the target (it relays the primary's WAL to them), with writes still going on; then
 * writers are fenced until the target has every byte the old primary flushed, and it is promoted
 * like after a failover (`promoting`). Nothing acknowledged is lost, and writes pause for about the
 * time the promotion takes: the relaying standbys only have to follow the target onto its new
 * timeline for its first commits to be acknowledged.
 */
import { RingfenceError } from "../lib/errors.js";
import { formatLsn, parseLsn } from "../lib/lsn.js";
import type { CellFailoverState, CellStore } from "./cell-store.js";
import type { Evidence } from "./evidence.js";
import { event, type FailoverOptions, type FailoverRecord } from "./failover-record.js";
import { writersFenced } from "./fence-proof.js";
import type { WorldIndex } from "./world-index.js";

/** How far behind the primary (WAL bytes) a home standby may be and still count as caught up for failback. */
const CAUGHT_UP_BYTES = 16n * 1024n * 1024n;

export class Switchovers {
  readonly #index: WorldIndex;
  readonly #cells: CellStore;
  readonly #evidence: Evidence;
  readonly #clock: () => number;
  readonly #options: FailoverOptions;
  readonly #poke: () => void;
  /** Since when each failed-over cell's home standby has been healthy and caught up. */
  #homeHealthySince = new Map<string, number>();

  constructor(deps: {
    index: WorldIndex;
    cells: CellStore;
    evidence: Evidence;
    clock: () => number;
    options: FailoverOptions;
    poke: () => void;
  }) {
    this.#index = deps.index;
    this.#cells = deps.cells;
    this.#evidence = deps.evidence;
    this.#clock = deps.clock;
    this.#options = deps.options;
    this.#poke = deps.poke;
  }

  /** Forgets a cell's failback window (it failed over again). */
  forget(cell: string): void {
    this.#homeHealthySince.delete(cell);
  }

  /**
   * Starts a planned switchover of `cell` to `to` (or a failback to its home): the cell's other
   * standbys stream from the target first, then writers are fenced, and once the target has every
   * byte the primary flushed it is promoted (see `step`).
   */
  async start(
    cell: string,
    to: string,
    reason: string,
    actor = "operator",
    kind: "switchover" | "failback" = "switchover",
  ): Promise<void> {
    const state = (await this.#cells.states()).find((s) => s.cell.cell === cell);
    if (!state) throw new RingfenceError("RINGFENCE_NOT_FOUND", `no cell ${cell} in this world`);
    if (state.phase !== "serving") {
      throw new RingfenceError(
        "RINGFENCE_FAILOVER_NOT_PENDING",
        `${cell} is ${state.phase}; a switchover starts only from serving (see ringfence failover status)`,
      );
    }
    const replicas = this.#index.topology.cells.list.find((c) => c.id === cell)?.regions ?? [];
    if (to === state.cell.primary || !replicas.includes(to)) {
      throw new RingfenceError(
        "RINGFENCE_BAD_REQUEST",
        `${to} cannot become the primary of ${cell}: choose one of its standby regions (${replicas.filter((r) => r !== state.cell.primary).join(", ")})`,
        { problems: [{ path: "body.to", message: "must be a standby region of the cell" }] },
      );
    }
    const now = this.#clock();
    const record: FailoverRecord = {
      kind,
      from: state.cell.primary,
      to,
      reason,
      startedAtMs: now,
      steps: { preparing: now },
    };
    // The phase names the target to agents (`switchingTo`): the version bump sends it to them.
    await this.#cells.update(cell, { phase: "switching-over", failover: { ...record }, reportNow: true }, [
      {
        ...event(
          `${kind}.started`,
          cell,
          `${kind} of ${cell} from ${state.cell.primary} to ${to}: the other standbys stream from ${to}, then writers are fenced until ${to} has caught up and is promoted (${reason})`,
          { from: state.cell.primary, to, reason },
        ),
        actor,
      },
    ]);
    this.#poke();
  }

  /**
   * Fences the cell's writers once every standby other than the target streams from the target,
   * or once the prepare time is up (a standby that does not relay then only rejoins later).
   */
  async #fence(state: CellFailoverState, record: FailoverRecord, to: string, now: number): Promise<void> {
    const { cell } = state.cell;
    const relays = this.#index.layout.databases.filter(
      (d) => d.cell === cell && d.region !== record.from && d.region !== to,
    );
    const relaying = relays.every(
      (d) => this.#evidence.database(d.id)?.report.streamingFrom === `${cell}/${to}`,
    );
    const prepareMs = this.#options.switchoverPrepareMs ?? 3_000;
    if (!relaying && now - record.startedAtMs < prepareMs) return;
    const steps = { ...record.steps, fenced: now };
    const fenced = await this.#cells.update(cell, { fenced: true, failover: { ...record, steps } }, [
      event(
        `${record.kind}.fenced`,
        cell,
        relaying
          ? `writers of ${cell} fenced: every other standby streams from ${to}`
          : `writers of ${cell} fenced after ${prepareMs} ms: not every other standby streams from ${to} yet`,
        { relaying },
      ),
    ]);
    if (fenced)
      await this.#cells.update(
        cell,
        { failover: { ...record, steps, fenceVersion: fenced.desiredVersion } },
        [],
      );
  }

  /** A switchover under way: promote the target once it has what the fenced primary flushed. */
  async step(state: CellFailoverState, record: FailoverRecord, now: number): Promise<void> {
    const { cell } = state.cell;
    const to = record.to;
    if (to === undefined) return;
    if (record.steps.fenced === undefined) return await this.#fence(state, record, to, now);
    // Positions count only once every agent with a writer endpoint for the cell runs the fence:
    // until then a writer elsewhere could still send the old primary a commit. And they must have
    // been read under the fence (reports carry the desired version they were probed under).
    const fence = record.fenceVersion;
    if (fence === undefined) return;
    const allFenced = writersFenced(this.#index, this.#evidence, cell, fence);
    if (allFenced && record.steps.writersFenced === undefined) {
      // No writer can reach the old primary any more. Its position must be read from here on: a
      // desired-version bump makes every agent probe and report at once, and a report probed under
      // that version was read after the last writer closed, so it covers every write a client saw
      // acknowledged (no waiting on the clock for a report that is recent enough).
      const steps = { ...record.steps, writersFenced: now };
      const asked = await this.#cells.update(cell, { failover: { ...record, steps }, reportNow: true }, []);
      if (asked)
        await this.#cells.update(
          cell,
          { failover: { ...record, steps, positionsVersion: asked.desiredVersion } },
          [],
        );
      return;
    }
    // The old primary's position from a report probed under the version asked for once every writer
    // was fenced: read after the last writer closed (a stricter test than fence-proof.ts's margin on
    // the clock, which failovers use, and one that waits for no clock).
    const asked = record.positionsVersion;
    const primary = this.#evidence.database(`${cell}/${record.from}`);
    const target = this.#evidence.database(`${cell}/${to}`);
    const primaryFlush =
      asked !== undefined && primary && primary.version >= asked && primary.report.role === "primary"
        ? parseLsn(primary.report.flushLsn ?? primary.report.lsn)
        : undefined;
    const targetFlush =
      target && target.version >= fence && target.report.role === "standby"
        ? parseLsn(target.report.flushLsn ?? target.report.lsn)
        : undefined;
    if (primaryFlush !== undefined && targetFlush !== undefined && targetFlush >= primaryFlush) {
      const next: FailoverRecord = {
        ...record,
        steps: { ...record.steps, caughtUp: now, decided: now },
        decision: {
          target: to,
          flushLsn: formatLsn(targetFlush),
          proof: `${to} has every byte the fenced primary flushed (${formatLsn(primaryFlush)})`,
        },
      };
      await this.#cells.update(cell, { primary: to, phase: "promoting", failover: { ...next } }, [
        event(
          `${record.kind}.promoting`,
          cell,
          `promoting ${to}: it has caught up with ${record.from} at ${formatLsn(primaryFlush)}`,
          {
            target: to,
            flushLsn: formatLsn(primaryFlush),
          },
        ),
      ]);
      return;
    }
    if (now - record.startedAtMs < (this.#options.switchoverTimeoutMs ?? 10_000)) return;
    const steps = { ...record.steps, aborted: now };
    await this.#cells.update(
      cell,
      { fenced: false, phase: "serving", failover: null },
      [
        event(
          `${record.kind}.aborted`,
          cell,
          `${to} did not catch up with ${record.from} within ${this.#options.switchoverTimeoutMs ?? 10_000} ms; ${record.from} stays primary, writers unfenced`,
          {
            steps,
            primaryFlush: primaryFlush === undefined ? null : formatLsn(primaryFlush),
            targetFlush: targetFlush === undefined ? null : formatLsn(targetFlush),
          },
        ),
      ],
      { kind: `${record.kind}-aborted`, startedAtMs: record.startedAtMs, record: { ...record, steps } },
    );
  }

  /** A cell serving away from home switches back once home has been healthy and caught up for the stability window. */
  async maybeFailBack(state: CellFailoverState, now: number): Promise<void> {
    const { cell } = state.cell;
    const topology = this.#index.topology;
    const home = topology.cells.list.find((c) => c.id === cell);
    if (!home || state.cell.primary === home.home) {
      this.#homeHealthySince.delete(cell);
      return;
    }
    if (topology.failover.failback === "manual" || topology.failover.manualFailback.includes(home.index))
      return;
    const freshMs = topology.failover.detection.freshMs;
    const standby = this.#evidence.database(`${cell}/${home.home}`);
    const primary = this.#evidence.database(`${cell}/${state.cell.primary}`);
    const standbyFlush = standby ? parseLsn(standby.report.flushLsn ?? standby.report.lsn) : undefined;
    const primaryFlush = primary ? parseLsn(primary.report.flushLsn ?? primary.report.lsn) : undefined;
    const healthy =
      standby !== undefined &&
      now - standby.atMs <= freshMs &&
      standby.report.role === "standby" &&
      standbyFlush !== undefined &&
      primaryFlush !== undefined &&
      primaryFlush - standbyFlush <= CAUGHT_UP_BYTES;
    if (!healthy) {
      this.#homeHealthySince.delete(cell);
      return;
    }
    const since = this.#homeHealthySince.get(cell) ?? now;
    this.#homeHealthySince.set(cell, since);
    if (now - since < topology.failover.failbackAfterMs) return;
    this.#homeHealthySince.delete(cell);
    await this.start(
      cell,
      home.home,
      `home ${home.home} healthy and caught up for ${Math.round((now - since) / 1000)} s`,
      "controller",
      "failback",
    );
  }
}
