/**
 * Picking the upstream for a try. Candidates come grouped by region in order of preference (the
 * router's own region first, then the others by WAN latency); the first region with a candidate not
 * tried yet wins, so a retry stays in the nearest region while it has an untried instance. Within
 * that region the candidate with the fewest outstanding requests wins; between equally loaded ones,
 * one in another zone than the previous try's (failures in one zone are often shared), then the
 * rotation decides, so equal load spreads round-robin. Each pick is O(candidates) and allocates
 * nothing.
 */

/** An upstream that may serve the request: its slot (id and zone id) and its requests in flight. */
export interface BalancedUpstream {
  readonly slot: { readonly id: string; readonly zone: string };
  /** Requests in flight to this upstream now. */
  readonly outstanding: number;
}

/** Wrapping keeps the counter a small integer; picks stay evenly spread across the wrap. */
const ROTATION_LIMIT = 0x3fffffff;

/**
 * The rotating start of each scan: one per router, advanced once per region group looked at, so
 * that successive picks among equally loaded upstreams take turns.
 */
export class Rotation {
  #next: number;

  /** Creates a rotation starting at `start` (default 0). */
  constructor(start = 0) {
    this.#next = Math.abs(Math.trunc(start)) % (ROTATION_LIMIT + 1);
  }

  /** The value for this scan; advances by one each call and wraps around. */
  take(): number {
    const r = this.#next;
    this.#next = r === ROTATION_LIMIT ? 0 : r + 1;
    return r;
  }
}

/**
 * The upstream for a try: in the first group (region) with a candidate not in `tried`, the least
 * outstanding, preferring on a tie another zone than `previousZone` (the zone of the try before, if
 * any), then the first in rotated order. Undefined when every candidate was tried.
 */
export function chooseUpstream<U extends BalancedUpstream>(
  groups: readonly (readonly U[])[],
  tried: ReadonlySet<string>,
  previousZone: string | undefined,
  rotation: Rotation,
): U | undefined {
  for (const group of groups) {
    const n = group.length;
    if (n === 0) continue;
    let best: U | undefined;
    let bestScore = Number.POSITIVE_INFINITY;
    const offset = rotation.take() % n;
    for (let k = 0; k < n; k++) {
      const u = group[(offset + k) % n] as U;
      if (tried.has(u.slot.id)) continue;
      // Twice the load, plus one in the previous try's zone: load decides, the zone breaks ties.
      const score = u.outstanding * 2 + (u.slot.zone === previousZone ? 1 : 0);
      if (score < bestScore) {
        best = u;
        bestScore = score;
      }
    }
    if (best) return best;
  }
  return undefined;
}
