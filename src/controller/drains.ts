/**
 * Drains as the controller reads them: which drain takes a region, zone or instance out of routing,
 * and how to name a drain's target to a person. Pure.
 *
 * A region drain covers its zones and instances, a zone drain its instances. Where several drains
 * cover one thing, the most specific one (instance, then zone, then region) is the one reported.
 */
import type { Drain, DrainTarget } from "../world/contracts.js";

/** A drain's id `drain-<n>` as its number, or undefined when `id` is not of that form. */
export function drainNumber(id: string): number | undefined {
  const match = /^drain-([1-9][0-9]{0,14})$/.exec(id);
  return match ? Number(match[1]) : undefined;
}

/** `region r1`, `zone r1/a`, `instance app/cell-0/r1/0`. */
export function describeTarget(target: DrainTarget): string {
  return `${target.kind} ${target.id}`;
}

/** Looks up which drain covers a region, a zone or an instance. */
export class DrainLookup {
  readonly drains: readonly Drain[];
  readonly #byTarget: ReadonlyMap<string, Drain>;

  constructor(drains: readonly Drain[]) {
    this.drains = drains;
    const byTarget = new Map<string, Drain>();
    // Oldest first: when the same target appears twice (it cannot, the store keeps one), the oldest wins.
    for (const d of drains) {
      const key = `${d.target.kind}:${d.target.id}`;
      if (!byTarget.has(key)) byTarget.set(key, d);
    }
    this.#byTarget = byTarget;
  }

  #get(kind: DrainTarget["kind"], id: string): Drain | undefined {
    return this.#byTarget.get(`${kind}:${id}`);
  }

  /** The drain of a region. */
  region(region: string): Drain | undefined {
    return this.#get("region", region);
  }

  /** The drain of a zone, or of its region. */
  zone(zone: { readonly id: string; readonly region: string }): Drain | undefined {
    return this.#get("zone", zone.id) ?? this.region(zone.region);
  }

  /** The drain of an instance slot, of its zone or of its region. */
  instance(slot: { readonly id: string; readonly zone: string; readonly region: string }): Drain | undefined {
    return this.#get("instance", slot.id) ?? this.zone({ id: slot.zone, region: slot.region });
  }
}
