/**
 * Human units in configuration: durations like `250ms`, `5s`, `30d`, percentages like `99.95` or
 * `"99.95%"`. Parsers return `undefined` for malformed input so schemas can report the field.
 */

const DURATION_UNITS_MS: Record<string, number> = {
  ms: 1,
  s: 1_000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
  y: 31_557_600_000, // a Julian year, 365.25 days
};

const DURATION_RE = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w|y)\s*$/;

/** Milliseconds in an average (Julian) year. */
export const YEAR_MS = DURATION_UNITS_MS.y as number;
export const HOUR_MS = DURATION_UNITS_MS.h as number;

/** Parses `"250ms"`, `"5s"`, `"1.5h"`, `"30d"`, `"2y"` or a bare `0` into milliseconds. */
export function parseDurationMs(input: string | number): number | undefined {
  if (typeof input === "number") return input === 0 ? 0 : undefined;
  const m = DURATION_RE.exec(input);
  if (!m) return undefined;
  const ms = Number(m[1]) * (DURATION_UNITS_MS[m[2] as string] as number);
  return Number.isFinite(ms) ? ms : undefined;
}

/** Formats milliseconds in the largest unit that keeps the number readable: `1.5 s`, `4 h`, `30 d`. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms)) return "never";
  const abs = Math.abs(ms);
  const units: Array<[string, number]> = [
    ["y", DURATION_UNITS_MS.y as number],
    ["d", DURATION_UNITS_MS.d as number],
    ["h", DURATION_UNITS_MS.h as number],
    ["min", DURATION_UNITS_MS.m as number],
    ["s", DURATION_UNITS_MS.s as number],
  ];
  for (const [name, size] of units) {
    if (abs >= size) return `${trimNumber(ms / size)} ${name}`;
  }
  return `${trimNumber(ms)} ms`;
}

/** Parses `99.95` or `"99.95%"` into the percent number 99.95. */
export function parsePercent(input: string | number): number | undefined {
  if (typeof input === "number") return Number.isFinite(input) ? input : undefined;
  const m = /^\s*(-?\d+(?:\.\d+)?)\s*%\s*$/.exec(input);
  return m ? Number(m[1]) : undefined;
}

/** Number of nines of an availability ratio: 0.999 → 3. Infinite for 1. */
export function nines(availability: number): number {
  if (availability >= 1) return Number.POSITIVE_INFINITY;
  return -Math.log10(1 - availability);
}

/** Formats an availability ratio as a percent with enough digits to show its nines: 99.9994%. */
export function formatAvailability(availability: number): string {
  if (availability >= 1) return "100%";
  if (availability <= 0) return "0%";
  const digits = Math.min(10, Math.max(2, Math.ceil(nines(availability)) + 1));
  const pct = availability * 100;
  // Never round up to 100%: truncate so that 99.99999... stays below.
  const factor = 10 ** (digits - 2);
  return `${(Math.floor(pct * factor) / factor).toFixed(digits - 2)}%`;
}

/** Formats a ratio in [0, 1] as a short percent: 0.25 → `25%`, 0.0625 → `6.25%`. */
export function formatShare(ratio: number): string {
  return `${trimNumber(ratio * 100)}%`;
}

function trimNumber(n: number): string {
  const abs = Math.abs(n);
  const digits = abs >= 100 ? 0 : abs >= 10 ? 1 : 2;
  return Number(n.toFixed(digits)).toString();
}
