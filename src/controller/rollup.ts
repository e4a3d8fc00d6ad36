/**
 * Health roll-ups: many observations of a thing (an instance, a cell, a zone, a region, the world)
 * summed up as healthy, degraded or unhealthy, with the reason a person reads first.
 */

export type RollUpHealth = "healthy" | "degraded" | "unhealthy";

export interface RollUp {
  readonly health: RollUpHealth;
  readonly reason: string;
}

/** Something wrong with a thing, and how bad it is. */
export interface Issue {
  readonly health: Exclude<RollUpHealth, "healthy">;
  readonly reason: string;
}

/** The worst severity among `issues` with (up to three of) its reasons, or healthy with `healthyReason`. */
export function rollUp(issues: readonly Issue[], healthyReason: string): RollUp {
  const worst = issues.some((i) => i.health === "unhealthy")
    ? "unhealthy"
    : issues.length > 0
      ? "degraded"
      : undefined;
  if (worst === undefined) return { health: "healthy", reason: healthyReason };
  const reasons = issues.filter((i) => i.health === worst).map((i) => i.reason);
  const shown = reasons.slice(0, 3).join("; ");
  return { health: worst, reason: reasons.length > 3 ? `${shown}; and ${reasons.length - 3} more` : shown };
}
