/**
 * The compiled topology as a file: the supervisor of a local world compiles the topology once
 * (load.ts: YAML, zod, cross-field rules) and writes the frozen result here; the controller, agents
 * and routers it starts read that result instead of compiling again. So every process of a world
 * runs on the same compiled values, and none of them loads the YAML parser and the schema library
 * (~13 MiB of heap and ~0.2 s of CPU each, in ten role processes per default world).
 */
import { readFileSync } from "node:fs";
import { RingfenceError } from "../lib/errors.js";
import { writeFileAtomic } from "../lib/files.js";
import type { Topology } from "./model.js";

/** Bumped whenever the shape of `Topology` changes in a way an older file would not satisfy. */
const FORMAT = 1;

interface CompiledFile {
  readonly format: number;
  readonly topology: Topology;
}

/** Writes `topology` to `path` whole (a reader sees the old file or the new one, never a torn one). */
export function writeCompiledTopology(path: string, topology: Topology): void {
  const file: CompiledFile = { format: FORMAT, topology };
  writeFileAtomic(path, `${JSON.stringify(file)}\n`);
}

/** Reads a compiled topology written by `writeCompiledTopology`, deeply frozen like `compile`'s. */
export function readCompiledTopology(path: string): Topology {
  let file: CompiledFile;
  try {
    file = JSON.parse(readFileSync(path, "utf8")) as CompiledFile;
  } catch (err) {
    throw new RingfenceError(
      "RINGFENCE_WORLD_NOT_FOUND",
      `cannot read the compiled topology ${path} (${(err as Error).message}): start the world with \`ringfence up\`, which writes it`,
      { cause: err },
    );
  }
  if (file.format !== FORMAT || typeof file.topology !== "object" || file.topology === null) {
    throw new RingfenceError(
      "RINGFENCE_WORLD_NOT_FOUND",
      `${path} was written by another version of ringfence: \`ringfence down\`, then \`ringfence up\` writes it anew`,
    );
  }
  return deepFreeze(file.topology);
}

function deepFreeze<T>(value: T): T {
  if (typeof value === "object" && value !== null && !Object.isFrozen(value)) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}
