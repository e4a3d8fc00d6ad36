/**
 * `ringfence up` that cannot succeed: a topology whose service exits at once. Whether `up` gives up
 * (foreground or `--detach`) or is interrupted (Ctrl-C, SIGTERM), it must stop everything it started,
 * exit non-zero, say which (region, cell) pairs did not serve and which log lines say why, and leave
 * no process behind, its own supervisor included, so that the next `up` is not refused. All four runs
 * share one state directory, each starting where the previous one left off.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { findWorldProcesses, stopOrphans, WORLD_MARK } from "../world/orphans.js";
import { environOf, isAlive, listProcs } from "../world/procfs.js";
import { StateDir } from "../world/state.js";
import { RINGFENCE_BIN } from "./paths.js";

// Its own addresses: 127.163.x.y is used by no other test.
const ADDRESS_BASE = "163";
// Long enough for every instance to have crashed at least once on a loaded machine.
const READY_TIMEOUT = "40s";

const FAILING_TOPOLOGY = `
name: fails-at-once
regions:
  - { name: r1, zones: [a], latency: { r2: 2ms } }
  - { name: r2, zones: [a] }
cells: { count: 2, replicas: 2, syncQuorum: 1, buckets: 64 }
routers: { perRegion: 1 }
services:
  - name: exits
    command: [${JSON.stringify(process.execPath)}, "-e", "console.error('cannot read /etc/exits.conf'); process.exit(3)"]
    health: /health
    instances: 1
    slos:
      - { scenario: all, routes: ["GET /things/:id"], availability: 99.9, latency: 300ms }
`;

/** A run of the CLI: its output so far, and its end. */
interface Run {
  readonly child: ChildProcess;
  stdout: string;
  stderr: string;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const runs: ChildProcess[] = [];

/** Starts `ringfence ...args` as a process group of its own, as a shell runs a foreground job. */
function ringfence(...args: string[]): Run {
  const child = spawn(process.execPath, [RINGFENCE_BIN, ...args], {
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  runs.push(child);
  const run: Run = {
    child,
    stdout: "",
    stderr: "",
    exited: new Promise((resolve) => child.once("exit", (code, signal) => resolve({ code, signal }))),
  };
  child.stdout?.on("data", (chunk: Buffer) => {
    run.stdout += chunk.toString();
  });
  child.stderr?.on("data", (chunk: Buffer) => {
    run.stderr += chunk.toString();
  });
  return run;
}

async function outputMatches(run: Run, pattern: RegExp): Promise<void> {
  let done = false;
  void run.exited.then(() => {
    done = true;
  });
  while (!pattern.test(run.stderr)) {
    if (done) assert.fail(`exited before printing ${pattern}:\n${run.stderr}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Processes that name `paths` in their command line or carry one as the world mark, found without orphans.ts. */
function processesUnder(...paths: string[]): string[] {
  return listProcs()
    .filter((p) => p.state !== "Z" && p.pid !== process.pid)
    .filter((p) => {
      const cmd = p.argv.join(" ");
      const mark = environOf(p.pid)?.get(WORLD_MARK);
      return paths.some((path) => cmd.includes(path) || mark?.startsWith(path) === true);
    })
    .map((p) => `${p.pid} ${p.argv.join(" ")}`);
}

describe("an `up` that cannot succeed", { timeout: 900_000 }, () => {
  // Under /var/tmp, which the postgres user can traverse (not /tmp's private namespaces).
  const dir = mkdtempSync("/var/tmp/ringfence-failed-start-");
  chmodSync(dir, 0o755);
  const state = new StateDir(join(dir, "state"));
  const topologyFile = join(dir, "topology.yaml");
  writeFileSync(topologyFile, FAILING_TOPOLOGY);
  const upArgs = [
    "--state-dir",
    state.root,
    "--address-base",
    ADDRESS_BASE,
    "--ready-timeout",
    READY_TIMEOUT,
  ];
  let pgRoot: string | undefined;

  after(
    async () => {
      for (const child of runs) if (child.exitCode === null && child.pid) process.kill(-child.pid, "SIGKILL");
      await stopOrphans(state, { graceMs: 5_000 });
      rmSync(dir, { recursive: true, force: true });
      if (pgRoot && !pgRoot.startsWith(dir)) rmSync(pgRoot, { recursive: true, force: true });
    },
    { timeout: 120_000 },
  );

  /** Nothing of the world runs any more, and nothing says a supervisor does. */
  function assertNothingLeft(): void {
    pgRoot ??= state.readConfig().pgRoot;
    assert.deepEqual(findWorldProcesses(state), [], "no process of the world is left");
    assert.deepEqual(processesUnder(state.root, pgRoot), [], "nothing names the state or data directories");
    assert.equal(existsSync(state.pidFile), false, "supervisor.pid is gone");
  }

  /** The error names every pair and, for each, log lines located by file and line that say why. */
  function assertExplained(stderr: string): void {
    assert.match(stderr, /RINGFENCE_WORLD_START_FAILED/);
    assert.match(
      stderr,
      /4 of 4 \(region, cell\) pairs got no healthy answer through their router: r1\/cell-0, r1\/cell-1, r2\/cell-0, r2\/cell-1\./,
    );
    assert.match(stderr, /Everything the start had started is stopped/);
    const logs = state.logs.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    for (const pair of ["r1/cell-0", "r1/cell-1", "r2/cell-0", "r2/cell-1"]) {
      const [region, cell] = pair.split("/") as [string, string];
      assert.match(
        stderr,
        new RegExp(`^ {2}${pair}: the router of ${region} answered 503 to GET /health`, "m"),
      );
      assert.match(
        stderr,
        new RegExp(
          `^ {2}${logs}/instance-exits-${cell}-${region}-0\\.log:\\d+: ${pair}: cannot read /etc/exits\\.conf`,
          "m",
        ),
        `the instance's own output for ${pair}`,
      );
      assert.match(
        stderr,
        new RegExp(
          `^ {2}${logs}/agent-${region}-a\\.log:\\d+: ${pair}: .*instance:exits/${cell}/${region}/0: exited unexpectedly \\(exit code 3\\)`,
          "m",
        ),
        `the agent's line for ${pair}`,
      );
    }
    // The error comes last, after everything was stopped.
    assert.ok(stderr.lastIndexOf("stopped\n") < stderr.indexOf("RINGFENCE_WORLD_START_FAILED"), stderr);
  }

  test("in the foreground: it stops everything, exits 2 and says which pairs did not serve and why", async () => {
    const up = ringfence("up", "--topology", topologyFile, ...upArgs);
    const { code } = await up.exited;
    assert.equal(code, 2, up.stderr);
    assertExplained(up.stderr);
    assertNothingLeft();
  });

  test("detached: the next `up` is not refused, and it too stops everything, supervisor included", async () => {
    const up = ringfence("up", "--detach", ...upArgs);
    const { code } = await up.exited;
    assert.equal(code, 2, up.stderr);
    assert.doesNotMatch(up.stderr, /RINGFENCE_WORLD_ORPHANS|RINGFENCE_WORLD_RUNNING/);
    assertExplained(up.stderr);
    const supervisor = /the world supervisor \(pid (\d+)\) exited \(exit code 2\)/.exec(up.stderr);
    assert.ok(supervisor, up.stderr);
    assert.equal(isAlive(Number(supervisor[1])), false, "the supervisor exited");
    assertNothingLeft();
  });

  test("Ctrl-C during a start stops everything and exits 130", async () => {
    const up = ringfence("up", ...upArgs);
    await outputMatches(up, /agents started/);
    // A terminal's Ctrl-C goes to the whole foreground process group: the supervisor and its children.
    process.kill(-(up.child.pid as number), "SIGINT");
    const { code } = await up.exited;
    assert.equal(code, 130, up.stderr);
    assert.match(up.stderr, /SIGINT: stopping the world that was starting/);
    assert.match(up.stderr, /the start was interrupted by SIGINT; everything it had started is stopped/);
    assert.doesNotMatch(
      up.stderr,
      /exited unexpectedly \(|restarting in/,
      "no child of the supervisor was restarted",
    );
    assertNothingLeft();
  });

  test("SIGTERM to `up --detach` during a start is passed on: its supervisor stops everything", async () => {
    const up = ringfence("up", "--detach", ...upArgs);
    await outputMatches(up, /agents started/);
    up.child.kill("SIGTERM");
    const { code } = await up.exited;
    assert.equal(code, 143, up.stderr);
    assert.match(up.stderr, /SIGTERM: stopping the world that was starting \(supervisor pid \d+\)/);
    assert.match(up.stderr, /the start was interrupted by SIGTERM/);
    const supervisor = /the world supervisor \(pid (\d+)\) exited \(exit code 143\)/.exec(up.stderr);
    assert.ok(supervisor, up.stderr);
    assert.equal(isAlive(Number(supervisor[1])), false);
    assertNothingLeft();
  });
});
