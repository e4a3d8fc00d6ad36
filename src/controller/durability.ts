/**
 * Durability policies, applied while a cell serves. A cell's primary commits only once an
 * out-of-region standby flushed the commit; when none is left streaming:
 *
 * - `strict` (the default): writes wait until one returns. An event says so
 *   (`durability.writes-waiting`), and another when a standby streams again (`durability.restored`).
 * - `available`: after `topology.failover.asyncAfterMs` (2 s) without one, the cell drops to asynchronous commit
 *   (`commit: async` in the desired state; the primary's agent clears `synchronous_standby_names`),
 *   with `durability.async`; once a standby streams again the cell returns to quorum commit with
 *   `durability.quorum`. Writes acknowledged meanwhile exist on the primary alone: a failover then
 *   cannot prove zero loss and asks for consent.
 *
 * A cell holds every service's data, so it is `available` only when every service says so.
 */
import type { Topology } from "../topology/model.js";
import type { CellFailoverState, CellStore } from "./cell-store.js";
import type { Evidence } from "./evidence.js";
import { event } from "./failover-record.js";
import type { WorldIndex } from "./world-index.js";

export type DurabilityPolicy = "strict" | "available";

/** A world's policy: `available` only when every service asks for it (compiled: `topology.failover.durability`). */
export function durabilityPolicy(topology: Topology): DurabilityPolicy {
  return topology.failover.durability;
}

export class DurabilityWatch {
  readonly #index: WorldIndex;
  readonly #cells: CellStore;
  readonly #evidence: Evidence;
  readonly #clock: () => number;
  readonly #policy: DurabilityPolicy;
  /** Since when each cell's primary has had no streaming standby. */
  #alone = new Map<string, number>();
  /** Cells whose "writes waiting" event was recorded. */
  #waiting = new Set<string>();

  constructor(deps: { index: WorldIndex; cells: CellStore; evidence: Evidence; clock: () => number }) {
    this.#index = deps.index;
    this.#cells = deps.cells;
    this.#evidence = deps.evidence;
    this.#clock = deps.clock;
    this.#policy = durabilityPolicy(deps.index.topology);
  }

  /** The policy in force for every cell of this world. */
  get policy(): DurabilityPolicy {
    return this.#policy;
  }

  /** Looks at one serving cell's primary and applies the policy. */
  async check(state: CellFailoverState): Promise<void> {
    if (this.#index.topology.cells.syncQuorum === 0) return;
    const { cell } = state.cell;
    const primary = this.#evidence.database(`${cell}/${state.cell.primary}`);
    const { detection, asyncAfterMs } = this.#index.topology.failover;
    if (primary?.report.role !== "primary" || this.#clock() - primary.atMs > detection.freshMs) return;
    const streaming = primary.report.standbys.filter((s) => s.state === "streaming").length;
    const now = this.#clock();
    const async = state.cell.commit === "async";
    if (streaming > 0) {
      this.#alone.delete(cell);
      if (async) {
        await this.#cells.update(cell, { commit: "quorum" }, [
          event(
            "durability.quorum",
            cell,
            `${cell}: a standby streams again; back to quorum commit (the available policy)`,
            {
              streaming,
            },
          ),
        ]);
      } else if (this.#waiting.delete(cell)) {
        await this.#cells.update(cell, {}, [
          event(
            "durability.restored",
            cell,
            `${cell}: a standby streams again; writes are acknowledged again`,
            { streaming },
          ),
        ]);
      }
      return;
    }
    const since = this.#alone.get(cell) ?? now;
    this.#alone.set(cell, since);
    if (this.#policy === "strict") {
      if (this.#waiting.has(cell)) return;
      this.#waiting.add(cell);
      await this.#cells.update(cell, {}, [
        event(
          "durability.writes-waiting",
          cell,
          `${cell}: no out-of-region standby streams from ${state.cell.primary}; under the strict policy writes wait until one returns`,
          { primary: state.cell.primary },
        ),
      ]);
      return;
    }
    if (async || now - since < asyncAfterMs) return;
    await this.#cells.update(cell, { commit: "async" }, [
      event(
        "durability.async",
        cell,
        `${cell}: no out-of-region standby for ${Math.round((now - since) / 1000)} s; asynchronous commit under the available policy (writes acknowledged now exist on ${state.cell.primary} alone until a standby returns)`,
        { primary: state.cell.primary },
      ),
    ]);
  }
}
