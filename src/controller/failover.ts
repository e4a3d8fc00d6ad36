/**
 * The failover reconciler: every quarter second, and right after each heartbeat, it moves each cell
 * through its failover cycle using the rules in `src/failover/`, with the numbers the topology
 * compiled (`topology.failover`: detection settings, promotion budget, failback window):
 *
 *   serving ──(observers in 2 other regions agree the primary is gone)──▶ failing-over: fenced
 *   failing-over ──(standby positions in: zero loss provable)──────────▶ promoting: new primary, epoch + 1
 *   failing-over ──(the fenced old primary's own position reached)──────▶ promoting (at once; fence-proof.ts)
 *   failing-over ──(not provable)──▶ awaiting-consent ──(operator approves, or proof arrives)──▶ promoting
 *   failing-over / awaiting-consent ──(the old primary is reachable again)──▶ serving (aborted, unfenced)
 *   promoting ──(the new primary reports itself primary)──▶ serving: unfenced, recorded in the history
 *
 * Agents do the database work (fence the writers, promote, repoint, rewind); the reconciler only
 * decides and records, every step as an event with its time.
 */
import { type Decision, decideFailover, type Quorum } from "../failover/decision.js";
import { judgePrimary } from "../failover/detection.js";
import { estimateLoss } from "../failover/estimate.js";
import { RingfenceError } from "../lib/errors.js";
import { formatLsn } from "../lib/lsn.js";
import { regionsByPreference } from "../topology/placement.js";
import type { CellFailoverState, CellStore } from "./cell-store.js";
import { type DurabilityPolicy, DurabilityWatch } from "./durability.js";
import type { Evidence } from "./evidence.js";
import { event, type FailoverOptions, type FailoverRecord } from "./failover-record.js";
import { fencedPrimaryFlush, writersFenced } from "./fence-proof.js";
import { LossWatch } from "./loss-watch.js";
import { Switchovers } from "./switchover.js";
import type { WorldIndex } from "./world-index.js";

const TICK_MS = 250;

export class FailoverCoordinator {
  readonly #index: WorldIndex;
  readonly #cells: CellStore;
  readonly #evidence: Evidence;
  readonly #clock: () => number;
  readonly #options: FailoverOptions;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  /** The last pass's failure, shown by `GET /v1/failover` until a pass succeeds. */
  lastError: { readonly message: string; readonly atMs: number } | undefined;
  /** When (by the controller's clock) the last pass that completed began; undefined before the first. */
  reconciledAtMs: number | undefined;
  #again = false;
  /** Cells whose "no candidate" was already logged during the current failover. */
  #noted = new Set<string>();
  readonly #switchovers: Switchovers;
  readonly #durability: DurabilityWatch;
  readonly #lossWatch: LossWatch;

  constructor(
    deps: { index: WorldIndex; cells: CellStore; evidence: Evidence; clock: () => number },
    options: FailoverOptions = {},
  ) {
    this.#index = deps.index;
    this.#cells = deps.cells;
    this.#evidence = deps.evidence;
    this.#clock = deps.clock;
    this.#options = options;
    this.#switchovers = new Switchovers({ ...deps, options, poke: () => this.poke() });
    this.#durability = new DurabilityWatch(deps);
    this.#lossWatch = new LossWatch(deps);
  }

  /** The durability policy in force (see durability.ts). */
  get durability(): DurabilityPolicy {
    return this.#durability.policy;
  }

  /** Starts a planned switchover of `cell` to `to` (see switchover.ts). */
  async switchover(cell: string, to: string, reason: string, actor = "operator"): Promise<void> {
    await this.#switchovers.start(cell, to, reason, actor);
  }

  start(): void {
    this.#timer = setInterval(() => this.poke(), this.#options.tickMs ?? TICK_MS);
    this.#timer.unref();
  }

  async stop(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#running?.catch(() => {});
  }

  /** Looks at every cell now (coalesced: one pass at a time, one more queued at most). */
  poke(): void {
    if (this.#running) {
      this.#again = true;
      return;
    }
    const startedAtMs = this.#clock();
    this.#running = this.tick()
      .then(() => {
        this.lastError = undefined;
        this.reconciledAtMs = startedAtMs;
      })
      .catch((err: Error) => {
        // Most often the control database is away: the next tick tries again.
        this.lastError = { message: err.message, atMs: this.#clock() };
      })
      .finally(() => {
        this.#running = undefined;
        if (this.#again) {
          this.#again = false;
          this.poke();
        }
      });
  }

  /** One pass over every cell. */
  async tick(): Promise<void> {
    await this.#lossWatch.load();
    for (const state of await this.#cells.states()) await this.#step(state);
    await this.#lossWatch.pass();
  }

  async #step(state: CellFailoverState): Promise<void> {
    const { cell } = state.cell;
    const now = this.#clock();
    const record = state.failover as FailoverRecord | null;
    switch (state.phase) {
      case "serving": {
        const verdict = judgePrimary(
          this.#evidence.primary(cell, state.cell.primary, now),
          now,
          this.#index.topology.failover.detection,
        );
        if (verdict.state !== "failed") {
          await this.#durability.check(state);
          return await this.#switchovers.maybeFailBack(state, now);
        }
        this.#noted.delete(cell);
        this.#switchovers.forget(cell);
        const started: FailoverRecord = {
          kind: "automatic",
          from: state.cell.primary,
          reason: verdict.reason,
          startedAtMs: now,
          steps: { detected: now, fenced: now },
        };
        const fenced = await this.#cells.update(
          cell,
          { fenced: true, phase: "failing-over", failover: { ...started } },
          [
            event(
              "failover.started",
              cell,
              `primary in ${state.cell.primary} failed: ${verdict.reason}; writers fenced`,
              {
                from: state.cell.primary,
                reason: verdict.reason,
                regions: verdict.regions,
              },
            ),
          ],
        );
        // The fence's desired version: agents at or past it have closed the cell's writers (fence-proof.ts).
        if (fenced) {
          await this.#cells.update(
            cell,
            { failover: { ...started, fenceVersion: fenced.desiredVersion } },
            [],
          );
        }
        return;
      }
      case "failing-over":
      case "awaiting-consent": {
        if (!record) return;
        if (await this.#abortIfBack(state, record, now)) return;
        const current = await this.#noteWritersFenced(cell, record, now);
        const standbys = this.#evidence.standbys(cell, current.from, current.startedAtMs);
        const allIn = standbys.every((s) => s.flushLsn !== undefined);
        const waited = now - current.startedAtMs >= this.#index.topology.failover.positionWaitMs;
        const decision = this.#decide(cell, current, this.#oldPrimaryFlush(cell, current));
        // A proof from the old primary promotes at once; otherwise the standbys' positions are waited
        // for (a quorum standby may still answer) until the position wait is over.
        const proven = decision.kind === "promote" && decision.basis === "old-primary";
        if (state.phase === "failing-over" && !allIn && !waited && !proven) return;
        if (decision.kind === "promote") return await this.#promote(state, current, decision, now);
        if (decision.kind === "no-candidate") {
          if (!this.#noted.has(cell)) {
            this.#noted.add(cell);
            await this.#cells.update(cell, {}, [
              event(
                "failover.no-candidate",
                cell,
                `no standby of ${cell} can be promoted yet: ${decision.reason}`,
                {},
              ),
            ]);
          }
          return;
        }
        if (state.phase === "awaiting-consent") return;
        const estimate = estimateLoss(
          this.#evidence.history(cell),
          decision.target.flushLsn,
          current.startedAtMs,
        );
        const waiting: FailoverRecord = {
          ...current,
          steps: { ...current.steps, consentAsked: now },
          decision: {
            target: decision.target.region,
            flushLsn: formatLsn(decision.target.flushLsn),
            reason: decision.reason,
          },
          estimate,
        };
        await this.#cells.update(cell, { phase: "awaiting-consent", failover: { ...waiting } }, [
          event(
            "failover.awaiting-consent",
            cell,
            `zero loss cannot be proven (${decision.reason}); estimated loss ${estimate.bytes} bytes, up to ${estimate.seconds.toFixed(1)} s of writes. Approve with: ringfence failover approve ${cell} --accept-data-loss`,
            { target: decision.target.region, estimate },
          ),
        ]);
        return;
      }
      case "switching-over": {
        if (!record) return;
        return await this.#switchovers.step(state, record, now);
      }
      case "promoting": {
        if (!record) return;
        const promotedAt = record.steps.decided ?? record.startedAtMs;
        const db = this.#evidence.database(`${cell}/${state.cell.primary}`);
        if (!db || db.atMs < promotedAt || db.report.role !== "primary") return;
        const steps = { ...record.steps, promoted: db.atMs, unfenced: now };
        const done = { ...record, steps, totalMs: now - record.startedAtMs };
        await this.#cells.update(
          cell,
          { fenced: false, phase: "serving", failover: null },
          [
            event(
              "failover.completed",
              cell,
              record.kind === "switchover" || record.kind === "failback"
                ? `${state.cell.primary} is the primary of ${cell} (was ${record.from}); writes paused ${now - (record.steps.fenced ?? record.startedAtMs)} ms`
                : `${state.cell.primary} is the primary of ${cell} (was ${record.from}); writers unfenced ${now - record.startedAtMs} ms after the failure was declared`,
              { from: record.from, to: state.cell.primary, steps, totalMs: done.totalMs, kind: record.kind },
            ),
          ],
          { kind: record.kind, startedAtMs: record.startedAtMs, record: done },
        );
        if (record.kind === "consent") this.#lossWatch.watch(cell, record, now);
        return;
      }
      default:
        return;
    }
  }

  /** Records when every writer of the cell was first seen fenced (the step `writersFenced`). */
  async #noteWritersFenced(cell: string, record: FailoverRecord, now: number): Promise<FailoverRecord> {
    const fence = record.fenceVersion;
    if (fence === undefined || record.steps.writersFenced !== undefined) return record;
    if (!writersFenced(this.#index, this.#evidence, cell, fence)) return record;
    const next = { ...record, steps: { ...record.steps, writersFenced: now } };
    await this.#cells.update(cell, { failover: { ...next } }, []);
    return next;
  }

  /**
   * The old primary's flushed position when it reported one after every writer of the cell was
   * fenced, so that no commit can follow it (fence-proof.ts); undefined otherwise (it is down or cut
   * off, a writer's agent has not confirmed the fence, or its report is older than that).
   */
  #oldPrimaryFlush(cell: string, record: FailoverRecord): bigint | undefined {
    const fence = record.fenceVersion;
    if (fence === undefined || !writersFenced(this.#index, this.#evidence, cell, fence)) return undefined;
    return fencedPrimaryFlush(this.#evidence, `${cell}/${record.from}`, fence, record.steps.writersFenced);
  }

  /** The decision with the positions heard since the failover began (and the old primary's, if proven). */
  #decide(cell: string, record: FailoverRecord, oldPrimaryFlush: bigint | undefined): Decision {
    const standbys = this.#evidence.standbys(cell, record.from, record.startedAtMs);
    const quorum: Quorum = this.#evidence.quorum(cell, record.from) ?? {
      k: this.#index.topology.cells.syncQuorum,
      names: standbys.map((s) => s.name),
    };
    return decideFailover({
      oldPrimaryFlush,
      quorum,
      standbys,
      preference: regionsByPreference(this.#index.topology.regions, record.from),
    });
  }

  async #promote(
    state: CellFailoverState,
    record: FailoverRecord,
    decision: Extract<Decision, { kind: "promote" | "await-consent" }>,
    now: number,
    consent?: { reason: string; actor: string },
  ): Promise<void> {
    const { cell } = state.cell;
    const next: FailoverRecord = {
      ...record,
      kind: consent ? "consent" : record.kind,
      steps: { ...record.steps, decided: now },
      decision: {
        target: decision.target.region,
        flushLsn: formatLsn(decision.target.flushLsn),
        ...(decision.kind === "promote" ? { proof: decision.proof } : { reason: decision.reason }),
      },
      ...(consent
        ? {
            consent: {
              reason: consent.reason,
              atMs: now,
              missing: this.#evidence
                .standbys(cell, record.from, record.startedAtMs)
                .filter((s) => s.flushLsn === undefined)
                .map((s) => `${cell}/${s.region}`),
              timeline: this.#evidence.database(`${cell}/${decision.target.region}`)?.report.timeline ?? null,
            },
          }
        : {}),
    };
    await this.#cells.update(
      cell,
      { primary: decision.target.region, phase: "promoting", failover: { ...next } },
      [
        consent
          ? {
              ...event(
                "failover.approved",
                cell,
                `promoting ${decision.target.region} (at ${formatLsn(decision.target.flushLsn)}) with the operator's consent to lose data: ${consent.reason}`,
                { target: decision.target.region, estimate: record.estimate, reason: consent.reason },
              ),
              actor: consent.actor,
            }
          : event(
              "failover.promoting",
              cell,
              `promoting ${decision.target.region} (at ${formatLsn(decision.target.flushLsn)}): ${decision.kind === "promote" ? decision.proof : decision.reason}`,
              { target: decision.target.region, flushLsn: formatLsn(decision.target.flushLsn) },
            ),
      ],
    );
  }

  /** Before a promotion, a primary that is reachable again ends the failover: nothing was lost. */
  async #abortIfBack(state: CellFailoverState, record: FailoverRecord, now: number): Promise<boolean> {
    const verdict = judgePrimary(
      this.#evidence.primary(state.cell.cell, record.from, now),
      now,
      this.#index.topology.failover.detection,
    );
    if (verdict.state !== "healthy") return false;
    const steps = { ...record.steps, aborted: now };
    await this.#cells.update(
      state.cell.cell,
      { fenced: false, phase: "serving", failover: null },
      [
        event(
          "failover.aborted",
          state.cell.cell,
          `the primary in ${record.from} is reachable again before any promotion; writers unfenced`,
          { steps },
        ),
      ],
      { kind: `${record.kind}-aborted`, startedAtMs: record.startedAtMs, record: { ...record, steps } },
    );
    return true;
  }

  /**
   * The operator's consent for a cell awaiting it: promotes the standby furthest ahead now. Throws
   * RINGFENCE_NOT_FOUND for an unknown cell, RINGFENCE_CONFLICT when the cell is not waiting.
   */
  async approve(cell: string, reason: string, actor = "operator"): Promise<void> {
    const state = (await this.#cells.states()).find((s) => s.cell.cell === cell);
    if (!state) throw new RingfenceError("RINGFENCE_NOT_FOUND", `no cell ${cell} in this world`);
    const record = state.failover as FailoverRecord | null;
    if (state.phase !== "awaiting-consent" || !record) {
      throw new RingfenceError(
        "RINGFENCE_FAILOVER_NOT_PENDING",
        `${cell} is ${state.phase}, not awaiting consent; see ringfence failover status`,
      );
    }
    const now = this.#clock();
    // Consent is for when nothing proves zero loss: the standby furthest ahead, whatever the old primary said.
    const decision = this.#decide(cell, record, undefined);
    if (decision.kind === "no-candidate") {
      throw new RingfenceError(
        "RINGFENCE_FAILOVER_NOT_PENDING",
        `${cell} has no standby to promote: ${decision.reason}`,
      );
    }
    await this.#promote(state, record, decision, now, { reason, actor });
  }
}
