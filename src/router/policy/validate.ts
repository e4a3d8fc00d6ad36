/**
 * Option checks shared by the routing policies. They run once, when a policy is constructed, and
 * throw a `RangeError` that names the option and the accepted range, so a misconfiguration fails
 * at start-up instead of on the hot path.
 */

/** Returns `value`, or `fallback` when undefined; throws unless it is a finite number in [min, max]. */
export function numberIn(
  owner: string,
  name: string,
  value: number | undefined,
  fallback: number,
  min: number,
  max: number,
): number {
  const v = value ?? fallback;
  if (typeof v !== "number" || Number.isNaN(v) || v < min || v > max) {
    throw new RangeError(`${owner}.${name} must be a number from ${min} to ${max}; got ${String(v)}`);
  }
  return v;
}

/** Like {@link numberIn} for whole numbers. */
export function integerIn(
  owner: string,
  name: string,
  value: number | undefined,
  fallback: number,
  min: number,
  max: number,
): number {
  const v = numberIn(owner, name, value, fallback, min, max);
  if (!Number.isInteger(v)) {
    throw new RangeError(`${owner}.${name} must be a whole number; got ${String(v)}`);
  }
  return v;
}
