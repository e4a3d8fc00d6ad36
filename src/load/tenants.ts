/**
 * Which tenants a load run uses: `load-<n>` ids drawn in order and kept while their cell still needs
 * tenants, so that every cell that owns buckets gets its share (at most `⌈T / cells⌉` each, at least
 * one). Pure and deterministic: the same bucket table gives the same tenants, run after run.
 */
import { RingfenceError } from "../lib/errors.js";
import { tenantBucket } from "../topology/placement.js";

export interface LoadTenant {
  readonly tenant: string;
  /** `cell-<index>`. */
  readonly cell: string;
}

export interface TenantChoice {
  /** `load-<n>` ids, drawn with `prefix` followed by 0, 1, 2, …. Default `load-`. */
  readonly prefix?: string;
  /** How many tenants to choose. */
  readonly count: number;
  /** The controller's bucket table: bucket → cell index. */
  readonly table: ArrayLike<number>;
  /** Give up after this many candidate ids. Default 10,000,000 (a cell with a tiny share of buckets). */
  readonly maxDraws?: number;
}

/** The cell id of a cell index, as routers and the controller name it. */
export function cellId(index: number): string {
  return `cell-${index}`;
}

/** The cell of `tenant` under `table`. */
export function cellOf(tenant: string, table: ArrayLike<number>): string {
  return cellId(table[tenantBucket(tenant, table.length)] as number);
}

/** Cells that own at least one bucket, in index order: the cells a run must cover. */
export function cellsInTable(table: ArrayLike<number>): string[] {
  const seen = new Set<number>();
  for (let b = 0; b < table.length; b++) seen.add(table[b] as number);
  return [...seen].sort((a, b) => a - b).map(cellId);
}

/**
 * Chooses `count` tenants covering every cell of the table: a candidate is kept when its cell has
 * fewer than `⌈count / cells⌉` tenants and keeping it still leaves room for one tenant in each cell
 * that has none yet. Throws RINGFENCE_USAGE when `count` is smaller than the number of cells.
 */
export function chooseTenants(choice: TenantChoice): LoadTenant[] {
  const { count, table } = choice;
  const prefix = choice.prefix ?? "load-";
  const cells = cellsInTable(table);
  if (!Number.isInteger(count) || count < 1) {
    throw new RingfenceError("RINGFENCE_USAGE", `--tenants must be a positive integer, got ${count}`);
  }
  if (count < cells.length) {
    throw new RingfenceError(
      "RINGFENCE_USAGE",
      `--tenants ${count} cannot cover the world's ${cells.length} cells; use --tenants ${cells.length} or more so that every cell gets load`,
    );
  }
  const quota = Math.ceil(count / cells.length);
  const perCell = new Map(cells.map((c) => [c, 0]));
  let uncovered = cells.length;
  const chosen: LoadTenant[] = [];
  const maxDraws = choice.maxDraws ?? 10_000_000;
  for (let n = 0; chosen.length < count; n++) {
    if (n >= maxDraws) {
      const short = cells.filter((c) => (perCell.get(c) ?? 0) < 1);
      throw new RingfenceError(
        "RINGFENCE_USAGE",
        `no tenants found for ${short.join(", ") || "some cells"} after ${maxDraws} candidate ids: the bucket table gives them too few buckets; use fewer --tenants`,
      );
    }
    const tenant = `${prefix}${n}`;
    const cell = cellOf(tenant, table);
    const have = perCell.get(cell) ?? 0;
    if (have >= quota) continue;
    const coversNew = have === 0;
    // Slots left after this one must still reach every other uncovered cell.
    if (count - chosen.length - 1 < uncovered - (coversNew ? 1 : 0)) continue;
    perCell.set(cell, have + 1);
    if (coversNew) uncovered--;
    chosen.push({ tenant, cell });
  }
  return chosen;
}
