import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { readCompiledTopology, writeCompiledTopology } from "./compiled.js";
import { BUNDLED_DIR, loadTopology } from "./load.js";

function withDir(fn: (dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), "ringfence-compiled-"));
  try {
    fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** `value` without its keys whose value is undefined (which a JSON file cannot hold, and no reader tells from absent). */
function withoutUndefined(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withoutUndefined);
  if (typeof value !== "object" || value === null) return value;
  return Object.fromEntries(
    Object.entries(value)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => [k, withoutUndefined(v)]),
  );
}

const bundled = readdirSync(BUNDLED_DIR).map((f) => join(BUNDLED_DIR, f));
const examples = readdirSync(join(BUNDLED_DIR, "..", "examples"))
  .filter((f) => f.endsWith(".yaml"))
  .map((f) => join(BUNDLED_DIR, "..", "examples", f));

for (const file of [...bundled, ...examples]) {
  test(`the compiled topology of ${file.split("/").slice(-2).join("/")} reads back equal and frozen`, () => {
    withDir((dir) => {
      const topology = loadTopology(file);
      const path = join(dir, "topology.json");
      writeCompiledTopology(path, topology);
      const read = readCompiledTopology(path);
      // Every value survives exactly (no NaN or Infinity turned into null), undefined fields aside.
      assert.deepStrictEqual(read, withoutUndefined(topology));
      assert.ok(Object.isFrozen(read));
      assert.ok(Object.isFrozen(read.failover));
      assert.ok(Object.isFrozen(read.services[0]));
    });
  });
}

test("a missing, torn or foreign compiled topology is refused with a way out", () => {
  withDir((dir) => {
    const path = join(dir, "topology.json");
    const refused = (why: RegExp) => (err: Error & { code?: string }) =>
      err.code === "RINGFENCE_WORLD_NOT_FOUND" &&
      why.test(err.message) &&
      /ringfence (up|down)/.test(err.message);
    assert.throws(() => readCompiledTopology(path), refused(/cannot read/));
    writeFileSync(path, '{"format": 1, "topo');
    assert.throws(() => readCompiledTopology(path), refused(/cannot read/));
    writeFileSync(path, JSON.stringify({ format: 99, topology: {} }));
    assert.throws(() => readCompiledTopology(path), refused(/another version/));
  });
});
