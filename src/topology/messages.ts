/**
 * Turns zod issues into messages an operator can act on: what was expected, what was found, and
 * (for misspelt fields) what was probably meant.
 */
import type { z } from "zod";

type RawIssue = z.core.$ZodRawIssue;

/** A per-parse error map: schema-level messages (set with `error:`) still take precedence. */
export function errorMap(knownKeys: ReadonlySet<string>): (issue: RawIssue) => string | undefined {
  return (issue) => {
    const got = `got ${describeValue(issue.input)}`;
    switch (issue.code) {
      case "invalid_type": {
        const expected = String(issue.expected);
        if (issue.input === undefined) return `is required (${article(expected)} ${expected})`;
        const noun = expected === "int" ? "whole number" : expected;
        return `must be ${article(noun)} ${noun}, ${got}`;
      }
      case "too_big": {
        const max = Number(issue.maximum);
        if (issue.origin === "array")
          return `has too many items: at most ${max} allowed, got ${lengthOf(issue.input)}`;
        if (issue.origin === "string") return `is too long: at most ${max} characters`;
        return `must be ${issue.inclusive === false ? "below" : "at most"} ${max}, ${got}`;
      }
      case "too_small": {
        const min = Number(issue.minimum);
        if (issue.origin === "array") return `needs at least ${min} item${min === 1 ? "" : "s"}`;
        if (issue.origin === "string")
          return min === 1 ? "must not be empty" : `needs at least ${min} characters`;
        return `must be ${issue.inclusive === false ? "above" : "at least"} ${min}, ${got}`;
      }
      case "invalid_value":
        return `must be one of ${issue.values.map((v) => JSON.stringify(v)).join(", ")}; ${got}`;
      case "unrecognized_keys":
        return issue.keys.map((k) => unknownField(k, knownKeys)).join("; ");
      case "invalid_format":
        return issue.format === "url"
          ? `must be a URL such as https://hooks.example.com/x; ${got}`
          : undefined;
      case "invalid_union":
        return `has the wrong type: ${got}`;
      default:
        return undefined;
    }
  };
}

function unknownField(key: string, known: ReadonlySet<string>): string {
  if (known.has(key)) return `field "${key}" does not belong here; check its indentation or move it`;
  const guess = closest(key, known);
  return `unknown field "${key}"${guess ? ` (did you mean "${guess}"?)` : ""}; remove it or fix the spelling`;
}

/** The known name nearest to `word` by edit distance, when it is close enough to be a typo. */
export function closest(word: string, known: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestDistance = Number.POSITIVE_INFINITY;
  for (const candidate of known) {
    const d = editDistance(word.toLowerCase(), candidate.toLowerCase());
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  return best !== undefined && bestDistance <= Math.max(1, Math.floor(word.length / 3)) ? best : undefined;
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diagonal = row[0] as number;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const above = row[j] as number;
      row[j] = Math.min(above + 1, (row[j - 1] as number) + 1, diagonal + (a[i - 1] === b[j - 1] ? 0 : 1));
      diagonal = above;
    }
  }
  return row[b.length] as number;
}

/** A short rendering of a bad value for a message: `"abc"`, `100`, `a list`, `nothing`. */
export function describeValue(value: unknown): string {
  if (value === undefined) return "nothing";
  if (value === null) return "null (an empty value)";
  if (Array.isArray(value)) return `a list of ${value.length}`;
  if (typeof value === "object") return "a mapping";
  const text = JSON.stringify(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

function lengthOf(value: unknown): string {
  return Array.isArray(value) ? String(value.length) : "more";
}

function article(word: string): string {
  return /^[aeiou]/.test(word) ? "an" : "a";
}

/** Every object key that appears anywhere in a zod schema, for "did you mean" suggestions. */
export function collectKeys(
  schema: unknown,
  into = new Set<string>(),
  seen = new Set<unknown>(),
): Set<string> {
  if (schema === null || typeof schema !== "object" || seen.has(schema)) return into;
  seen.add(schema);
  const def = (schema as { _zod?: { def?: Record<string, unknown> } })._zod?.def;
  if (!def) return into;
  const shape = def.shape as Record<string, unknown> | undefined;
  if (shape) {
    for (const [key, child] of Object.entries(shape)) {
      into.add(key);
      collectKeys(child, into, seen);
    }
  }
  for (const field of ["element", "innerType", "in", "out", "valueType"]) collectKeys(def[field], into, seen);
  for (const field of ["options", "items"]) {
    const list = def[field];
    if (Array.isArray(list)) for (const child of list) collectKeys(child, into, seen);
  }
  return into;
}
