/**
 * Lookups over a world's topology and layout that the controller needs on every request: which
 * cells, zones and regions exist, and every supervised process (`database:`, `writer:`, `instance:`
 * ids) with where it is placed. Built once at start; pure.
 */
import type { Topology } from "../topology/model.js";
import type { CellState } from "../world/contracts.js";
import type { InstanceSlot, Layout } from "../world/layout.js";

export type ProcessKind = "database" | "writer" | "instance";

export interface PlacedProcess {
  /** `database:cell-0/us-east`, `writer:cell-0/us-east`, `instance:directory/cell-0/us-east/1`. */
  readonly id: string;
  readonly kind: ProcessKind;
  /** The layout slot's own id, without the kind prefix. */
  readonly slot: string;
  readonly cell: string;
  readonly region: string;
  readonly zone: string;
}

/** The process id of a layout slot: `database:cell-0/us-east`. */
export function processId(kind: ProcessKind, slot: string): string {
  return `${kind}:${slot}`;
}

export class WorldIndex {
  readonly topology: Topology;
  readonly layout: Layout;
  readonly cells: ReadonlySet<string>;
  readonly zones: ReadonlySet<string>;
  readonly regions: ReadonlySet<string>;
  /** Every instance slot of the layout by its id (`app/cell-0/r1/0`, no `instance:` prefix). */
  readonly instances: ReadonlyMap<string, InstanceSlot>;
  /** Every process of the layout by id, in layout order. */
  readonly processes: ReadonlyMap<string, PlacedProcess>;
  readonly #byZone: ReadonlyMap<string, readonly PlacedProcess[]>;
  readonly #cellOrder: ReadonlyMap<string, number>;

  constructor(topology: Topology, layout: Layout) {
    this.topology = topology;
    this.layout = layout;
    this.cells = new Set(topology.cells.list.map((c) => c.id));
    this.zones = new Set(layout.zones.map((z) => z.id));
    this.regions = new Set(layout.regions.map((r) => r.name));
    this.instances = new Map(layout.instances.map((i) => [i.id, i]));
    this.#cellOrder = new Map(topology.cells.list.map((c) => [c.id, c.index]));
    const processes = new Map<string, PlacedProcess>();
    const add = (kind: ProcessKind, slot: { id: string; cell: string; region: string; zone: string }) => {
      const id = processId(kind, slot.id);
      processes.set(id, { id, kind, slot: slot.id, cell: slot.cell, region: slot.region, zone: slot.zone });
    };
    for (const d of layout.databases) add("database", d);
    for (const w of layout.writers) add("writer", w);
    for (const i of layout.instances) add("instance", i);
    this.processes = processes;
    const byZone = new Map<string, PlacedProcess[]>();
    for (const p of processes.values()) {
      const list = byZone.get(p.zone) ?? [];
      list.push(p);
      byZone.set(p.zone, list);
    }
    this.#byZone = byZone;
  }

  /** The processes placed in a zone. */
  processesIn(zone: string): readonly PlacedProcess[] {
    return this.#byZone.get(zone) ?? [];
  }

  /** The topology's cells from stored state, in topology order; cells the topology lost are left out. */
  orderCells(cells: readonly CellState[]): CellState[] {
    return cells
      .filter((c) => this.#cellOrder.has(c.cell))
      .sort((a, b) => (this.#cellOrder.get(a.cell) ?? 0) - (this.#cellOrder.get(b.cell) ?? 0));
  }
}
