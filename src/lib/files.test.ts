import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { writeFileAtomic } from "./files.js";

test("writeFileAtomic replaces a file whole and leaves no temporary file", () => {
  const dir = mkdtempSync(join(tmpdir(), "ringfence-files-"));
  try {
    const file = join(dir, "x.json");
    writeFileAtomic(file, "first");
    writeFileAtomic(file, "second");
    assert.equal(readFileSync(file, "utf8"), "second");
    assert.deepEqual(readdirSync(dir), ["x.json"]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
