/**
 * The settings ringfence writes for one instance of a cell (`ringfence.conf`): the common ones, plus
 * `synchronous_standby_names` on the primary (as the cell's commit mode asks) or `primary_conninfo`
 * on a standby (to the primary as reached from the standby's region); and which instance the cell's
 * primary is, as the desired state gives it.
 */
import { baseSettings, primaryConninfo, synchronousStandbyNames } from "../lib/postgres.js";
import type { CellState } from "../world/contracts.js";
import { type DatabaseSlot, type Layout, reach } from "../world/layout.js";
import type { PrimaryTarget } from "./standby-repair.js";

/**
 * `synchronous_standby_names` for `slot` as the primary of its cell: ANY `syncQuorum` of the cell's
 * other instances, or nothing when the cell commits `async`. Every other instance is out of region
 * (one replica per region), so a commit waits for another region.
 */
export function wantedStandbyNames(
  layout: Layout,
  slot: DatabaseSlot,
  cell: CellState,
  syncQuorum: number,
): string {
  if (cell.commit === "async") return "";
  const others = layout.databases.filter((d) => d.cell === slot.cell && d.id !== slot.id);
  return synchronousStandbyNames(
    syncQuorum,
    others.map((d) => d.applicationName),
  );
}

/** Everything `ringfence.conf` holds for `slot` while `primary` is its cell's primary. */
export function instanceSettings(
  layout: Layout,
  slot: DatabaseSlot,
  cell: CellState,
  primary: DatabaseSlot,
  syncQuorum: number,
): Record<string, string | number> {
  const settings: Record<string, string | number> = { ...baseSettings(slot.host, slot.port) };
  if (primary.id === slot.id) {
    settings.synchronous_standby_names = wantedStandbyNames(layout, slot, cell, syncQuorum);
  } else {
    settings.primary_conninfo = primaryConninfo({
      ...reach(layout, slot.region, primary.region, primary),
      applicationName: slot.applicationName,
    });
  }
  return settings;
}

/** The cell's primary database slot and how `slot` reaches it (undefined without a desired state). */
export function cellPrimary(
  layout: Layout,
  slot: DatabaseSlot,
  cell: CellState | undefined,
): PrimaryTarget | undefined {
  if (!cell) return undefined;
  const primary = layout.databases.find((d) => d.cell === slot.cell && d.region === cell.primary);
  if (!primary) return undefined;
  return { slot: primary, reach: reach(layout, slot.region, primary.region, primary) };
}

/**
 * Where `slot` streams from as a standby: its cell's primary, except during a switchover, when every
 * instance but the primary and the target streams from the target (see `CellState.switchingTo`).
 */
export function cellUpstream(
  layout: Layout,
  slot: DatabaseSlot,
  cell: CellState | undefined,
): PrimaryTarget | undefined {
  const primary = cellPrimary(layout, slot, cell);
  if (!primary || cell?.switchingTo === undefined || primary.slot.id === slot.id) return primary;
  const next = layout.databases.find((d) => d.cell === slot.cell && d.region === cell.switchingTo);
  if (!next || next.id === slot.id || next.id === primary.slot.id) return primary;
  return { slot: next, reach: reach(layout, slot.region, next.region, next) };
}
