import assert from "node:assert/strict";
import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { LogFollower } from "./log-follower.js";

test("returns only what was written since, whole lines, UTF-8 split across writes intact", (t) => {
  const dir = mkdtempSync(join(tmpdir(), "ringfence-follow-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, "supervisor.log");
  writeFileSync(file, "an earlier run ✓\n");
  const follower = new LogFollower(file, Buffer.byteLength("an earlier run ✓\n"));
  assert.deepEqual(follower.lines(), []);
  const check = Buffer.from("✓ ready\n");
  appendFileSync(file, Buffer.concat([Buffer.from("[ 0.1s] state … "), check.subarray(0, 1)]));
  assert.deepEqual(follower.lines(), [], "no line is complete yet");
  appendFileSync(file, Buffer.concat([check.subarray(1), Buffer.from("READY\nerror: half")]));
  assert.deepEqual(follower.lines(), ["[ 0.1s] state … ✓ ready", "READY"]);
  assert.deepEqual(
    follower.lines({ final: true }),
    ["error: half"],
    "the writer is gone: the rest is a line",
  );
  assert.deepEqual(follower.lines({ final: true }), []);
});
