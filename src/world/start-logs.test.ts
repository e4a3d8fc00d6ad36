import assert from "node:assert/strict";
import { appendFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { sampleTopology } from "../topology/testing.js";
import { buildLayout } from "./layout.js";
import { collapseRepeats, explainUnserved, linesSince, logMarks } from "./start-logs.js";
import { StateDir } from "./state.js";

const dirs: string[] = [];
after(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function tempState(): StateDir {
  const dir = mkdtempSync(join(tmpdir(), "ringfence-start-logs-"));
  dirs.push(dir);
  const state = new StateDir(join(dir, "state"));
  mkdirSync(state.logs, { recursive: true });
  return state;
}

test("only lines written after the mark count, numbered as in the whole file, blank ones skipped", () => {
  const state = tempState();
  const file = state.log("agent-r1-a");
  writeFileSync(file, "old 1\nold 2\n");
  const marks = logMarks(state.logs);
  appendFileSync(file, "new 3\n\nnew 5\npartial");
  assert.deepEqual(linesSince(file, marks.get(file)), [
    { line: 3, text: "new 3" },
    { line: 5, text: "new 5" },
    { line: 6, text: "partial" },
  ]);
  assert.deepEqual(linesSince(join(state.logs, "missing.log")), []);
  // A file truncated since the mark is read from its start.
  writeFileSync(file, "again\n");
  assert.deepEqual(linesSince(file, marks.get(file)), [{ line: 1, text: "again" }]);
});

test("repeats (equal but for timestamps and pids) fold into their last occurrence", () => {
  const folded = collapseRepeats([
    { line: 1, text: "2025-01-01T10:00:00.000Z [agent r1/a] instance:x: exited unexpectedly (exit code 3)" },
    { line: 2, text: "cannot read config" },
    { line: 3, text: "2025-01-01T10:00:01.500Z [agent r1/a] instance:x: exited unexpectedly (exit code 3)" },
    { line: 4, text: "2025-01-01 10:00:02.000 UTC [123] FATAL:  role missing" },
    { line: 5, text: "2025-01-01 10:00:03.000 UTC [456] FATAL:  role missing" },
  ]);
  assert.deepEqual(
    folded.map((l) => [l.line, l.times, l.first]),
    [
      [2, 1, 2],
      [3, 2, 1],
      [5, 2, 4],
    ],
  );
});

test("each pair that did not serve gets its own processes' lines that say why, located and deduplicated", () => {
  const topology = sampleTopology((d) => {
    d.services[0].instances = 1;
  }, 2);
  const layout = buildLayout(topology, 168);
  const state = tempState();
  const log = (name: string, lines: string[]) => appendFileSync(state.log(name), `${lines.join("\n")}\n`);
  log("agent-r1-a", ["from an earlier run: instance:app/cell-0/r1/0: exited unexpectedly (exit code 9)"]);
  const marks = logMarks(state.logs);
  log("instance-app/cell-0/r1/0", ["Error: cannot read /etc/app.conf", "    at main (app.js:3)"]);
  log("instance-app/cell-0/r1/0", ["Error: cannot read /etc/app.conf", "    at main (app.js:3)"]);
  log("agent-r1-a", [
    "t [agent r1/a] instance:app/cell-0/r1/0: started (pid 10)",
    "t [agent r1/a] instance:app/cell-1/r1/0: exited unexpectedly (exit code 1)",
    "t [agent r1/a] instance:app/cell-0/r1/0: exited unexpectedly (exit code 3)",
    "t [agent r1/a] instance:app/cell-0/r1/0: restarting in 250 ms (restart 1)",
    "t [agent r1/a] database:cell-0/r1: could not start: initdb failed",
  ]);
  log("db-cell-0/r1", [
    "LOG:  starting PostgreSQL 15",
    "FATAL:  the database system is starting up",
    'FATAL:  could not open file "base/1": Permission denied',
  ]);
  log("router-r1", ["listening on http://127.168.10.1:8080", "controller unreachable: fetch failed"]);
  // r2's agent logged nothing since the start.
  log("agent-r2-a", []);

  const problems = explainUnserved(
    layout,
    state,
    [
      { region: "r1", cell: "cell-0", lastAnswer: "503" },
      { region: "r2", cell: "cell-0", lastAnswer: "503" },
    ],
    marks,
  );
  const shown = problems.map(
    (p) => `${p.path} ${p.file?.slice(state.logs.length + 1)}:${p.line ?? "-"} ${p.message}`,
  );
  assert.deepEqual(shown, [
    "r1/cell-0 instance-app-cell-0-r1-0.log:3 Error: cannot read /etc/app.conf (2 times, first at line 1)",
    "r1/cell-0 instance-app-cell-0-r1-0.log:4     at main (app.js:3) (2 times, first at line 2)",
    "r1/cell-0 agent-r1-a.log:4 t [agent r1/a] instance:app/cell-0/r1/0: exited unexpectedly (exit code 3)",
    "r1/cell-0 agent-r1-a.log:6 t [agent r1/a] database:cell-0/r1: could not start: initdb failed",
    'r1/cell-0 db-cell-0-r1.log:3 FATAL:  could not open file "base/1": Permission denied',
    "r1/cell-0 router-r1.log:2 controller unreachable: fetch failed",
    "r2/cell-0 agent-r2-a.log:- the agent of r2/a logged nothing since the start: it had not started what runs there",
  ]);
});
