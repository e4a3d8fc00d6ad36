/**
 * Loads a topology from a file, a bundled name or a string: YAML → sections parsed by zod → cross-field
 * rules → compiled, frozen `Topology`. Every problem is collected and reported at once in a
 * `RingfenceError` whose problems carry the path, the fix, and the line and column in the file.
 */
import { existsSync, readFileSync } from "node:fs";
import { basename, join, resolve } from "node:path";
import { isMap, isScalar, LineCounter, type Node, parseDocument } from "yaml";
import { type Problem, RingfenceError } from "../lib/errors.js";
/** The package root (holds `topologies/` and `examples/`), the same from `src/` and `dist/`. */
import { PACKAGE_ROOT } from "../lib/package-root.js";
import { compile } from "./compile.js";
import { collectKeys, errorMap } from "./messages.js";
import type { Topology } from "./model.js";
import { type RawTopology, SECTIONS, type SectionName } from "./schema.js";
import { type PathPart, validate } from "./validate.js";

export { PACKAGE_ROOT };
export const BUNDLED_DIR = join(PACKAGE_ROOT, "topologies");
export const DEFAULT_TOPOLOGY = "default";

const KNOWN_KEYS = collectKeys({ _zod: { def: { shape: SECTIONS } } });
const MAP = errorMap(KNOWN_KEYS);

/**
 * Resolves a topology argument: a path to a file, or the name of a bundled topology
 * (`default`). Undefined means the bundled default.
 */
export function resolveTopologyPath(arg: string | undefined): { path: string; source: string } {
  const name = arg ?? DEFAULT_TOPOLOGY;
  if (!/[/\\.]/.test(name)) {
    const bundled = join(BUNDLED_DIR, `${name}.yaml`);
    if (existsSync(bundled)) return { path: bundled, source: `bundled:${name}` };
  }
  const path = resolve(name);
  if (!existsSync(path)) {
    throw new RingfenceError(
      "RINGFENCE_TOPOLOGY_NOT_FOUND",
      `no topology at ${path}: give the path to a ringfence.yaml, or a bundled name (${DEFAULT_TOPOLOGY})`,
    );
  }
  return { path, source: path };
}

/** Loads and compiles a topology file or bundled name. */
export function loadTopology(arg?: string): Topology {
  const { path, source } = resolveTopologyPath(arg);
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new RingfenceError(
      "RINGFENCE_TOPOLOGY_NOT_FOUND",
      `cannot read ${path}: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
  return parseTopology(text, source, basename(path).replace(/\.ya?ml$/, ""));
}

/** Parses and compiles topology YAML text. `source` names it in errors. */
export function parseTopology(text: string, source = "ringfence.yaml", fallbackName = "topology"): Topology {
  const file = source.startsWith("bundled:") ? `${source.slice("bundled:".length)}.yaml` : source;
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const yamlError = (problems: Problem[]) =>
    new RingfenceError("RINGFENCE_TOPOLOGY_YAML", summary(source, problems, "is not valid YAML"), {
      problems,
    });
  if (doc.errors.length > 0) {
    throw yamlError(
      doc.errors.map((e) => {
        const pos = lineCounter.linePos(e.pos[0]);
        return {
          path: "",
          message: e.message.split("\n")[0] ?? e.message,
          file,
          line: pos.line,
          column: pos.col,
        };
      }),
    );
  }
  let data: unknown;
  try {
    // Aliases are resolved here: an unknown anchor or an alias bomb is a YAML error too.
    data = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    throw yamlError([{ path: "", message: (err as Error).message, file, line: 1, column: 1 }]);
  }
  const locate = (path: PathPart[], atKey: boolean): { line?: number; column?: number } => {
    const node = nodeAt(doc.contents, path, atKey);
    const offset = node?.range?.[0];
    if (offset === undefined) return {};
    const pos = lineCounter.linePos(offset);
    return { line: pos.line, column: pos.col };
  };

  const problems: Problem[] = [];
  const add = (path: PathPart[], message: string, atKey = false) =>
    problems.push({ path: formatPath(path), message, file, ...locate(path, atKey) });

  if (data === null || typeof data !== "object" || Array.isArray(data)) {
    add([], "a topology must be a YAML mapping with regions:, cells: and services: at the top level");
    throw new RingfenceError("RINGFENCE_TOPOLOGY_INVALID", summary(source, problems), { problems });
  }
  const record = data as Record<string, unknown>;
  for (const key of Object.keys(record)) {
    if (!(key in SECTIONS)) {
      add(
        [key],
        MAP({ code: "unrecognized_keys", keys: [key], input: record, path: [] } as never) ?? "unknown field",
        true,
      );
    }
  }
  const parsed: { [K in SectionName]?: unknown } = {};
  for (const [key, schema] of Object.entries(SECTIONS) as [SectionName, (typeof SECTIONS)[SectionName]][]) {
    const result = schema.safeParse(record[key], { error: MAP, reportInput: true });
    if (result.success) parsed[key] = result.data;
    else for (const issue of result.error.issues) addIssue(add, [key], issue);
  }
  for (const p of validate(parsed as Partial<RawTopology>)) add(p.path, p.message);
  if (problems.length > 0) {
    throw new RingfenceError("RINGFENCE_TOPOLOGY_INVALID", summary(source, problems), { problems });
  }
  return compile(parsed as RawTopology, source, fallbackName);
}

type ZodIssue = { path: PropertyKey[]; message: string; code?: string; keys?: string[] };

function addIssue(
  add: (path: PathPart[], message: string, atKey?: boolean) => void,
  prefix: PathPart[],
  issue: ZodIssue,
): void {
  const path = [...prefix, ...issue.path.map((p) => (typeof p === "symbol" ? String(p) : p))];
  // An unknown field is reported at the field itself, one problem per key, so the line points at it.
  if (issue.code === "unrecognized_keys" && issue.keys && issue.keys.length > 0) {
    for (const key of issue.keys) {
      add(
        [...path, key],
        MAP({ code: "unrecognized_keys", keys: [key], input: {}, path: [] } as never) ?? issue.message,
        true,
      );
    }
    return;
  }
  add(path, issue.message);
}

/** `services[0].slos[1].availability` from `["services", 0, "slos", 1, "availability"]`. */
export function formatPath(path: readonly PathPart[]): string {
  let out = "";
  for (const part of path) {
    if (typeof part === "number") out += `[${part}]`;
    else out += out === "" ? part : `.${part}`;
  }
  return out;
}

/** The YAML node at `path` (its key when `atKey`), or the deepest node on the way there. */
function nodeAt(root: unknown, path: readonly PathPart[], atKey = false): Node | undefined {
  let node = root as Node | undefined;
  let best = node;
  for (const [i, part] of path.entries()) {
    if (node === undefined || node === null || !Array.isArray((node as { items?: unknown }).items)) break;
    if (isMap(node)) {
      const pair = node.items.find((p) => (isScalar(p.key) ? p.key.value : p.key) === part);
      if (!pair) break;
      node = (pair.value ?? undefined) as Node | undefined;
      // The key when the value is missing (null) or when the key itself is the problem.
      const value = pair.value as Node | null;
      best = (value?.range && !(atKey && i === path.length - 1) ? value : pair.key) as Node;
    } else {
      node = (node as { items: unknown[] }).items[part as number] as Node | undefined;
      if (node) best = node;
    }
  }
  return best;
}

function summary(source: string, problems: readonly Problem[], what = "has problems"): string {
  return `${source} ${what} (${problems.length} problem${problems.length === 1 ? "" : "s"})`;
}
