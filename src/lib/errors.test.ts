import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { PACKAGE_ROOT } from "../topology/load.js";
import { ERROR_CODES, formatProblem, RingfenceError } from "./errors.js";

test("every error code is documented in docs/errors.md with its status", () => {
  const doc = readFileSync(join(PACKAGE_ROOT, "docs", "errors.md"), "utf8");
  const rows = doc
    .split("\n")
    .filter((line) => line.startsWith("|"))
    .map((line) => line.split("|").map((cell) => cell.trim()));
  for (const [code, { status, retryable }] of Object.entries(ERROR_CODES)) {
    const row = rows.find((cells) => cells[1] === `\`${code}\``);
    assert.ok(row, `${code} is missing from docs/errors.md`);
    assert.equal(row[2], String(status), `${code}: docs/errors.md gives the wrong HTTP status`);
    assert.equal(row[3], retryable ? "yes" : "no", `${code}: docs/errors.md gives the wrong retryability`);
  }
});

test("errors carry the registry's status and retryability and serialise for APIs", () => {
  const err = new RingfenceError("RINGFENCE_TOPOLOGY_INVALID", "bad", {
    problems: [
      { path: "cells.count", message: "must be at least 1, got 0", file: "t.yaml", line: 3, column: 10 },
    ],
  });
  assert.equal(err.status, 400);
  assert.equal(err.retryable, false);
  assert.ok(err instanceof Error);
  assert.deepEqual(JSON.parse(JSON.stringify(err)), {
    code: "RINGFENCE_TOPOLOGY_INVALID",
    message: "bad",
    retryable: false,
    problems: [
      { path: "cells.count", message: "must be at least 1, got 0", file: "t.yaml", line: 3, column: 10 },
    ],
  });
  assert.equal(
    formatProblem(err.problems[0] as never),
    "t.yaml:3:10: cells.count: must be at least 1, got 0",
  );
  assert.equal(formatProblem({ path: "", message: "oops" }), "oops");
});
