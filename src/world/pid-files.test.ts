import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { ProcessRecord, readPidFile, readProcessRecord, runningSupervisor } from "./pid-files.js";
import { isAlive, startTimeOf } from "./procfs.js";
import { StateDir } from "./state.js";

const dirs: string[] = [];
const children: ChildProcess[] = [];
after(() => {
  for (const child of children) child.kill("SIGKILL");
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function stateDir(): StateDir {
  const dir = mkdtempSync(join(tmpdir(), "ringfence-pids-"));
  dirs.push(dir);
  return new StateDir(dir);
}

/** A process that runs until the test file ends. */
async function sleeper(): Promise<number> {
  const child = spawn(process.execPath, ["-e", "setTimeout(() => {}, 600_000)"], { stdio: "ignore" });
  children.push(child);
  await new Promise((resolve) => child.once("spawn", resolve));
  return child.pid as number;
}

/** The pid of a process that has exited (and been reaped). */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ["-e", ""], { stdio: "ignore" });
  await new Promise((resolve) => child.once("exit", resolve));
  return child.pid as number;
}

function recordSupervisor(state: StateDir, pid: number, startTime: number | null): void {
  const file = { version: 1, supervisor: { role: "supervisor", pid, startTime }, processes: [] };
  writeFileSync(state.processesFile, JSON.stringify(file));
}

test("no supervisor when supervisor.pid is missing", () => {
  const state = stateDir();
  assert.equal(readPidFile(state), undefined);
  assert.equal(runningSupervisor(state), undefined);
});

test("no supervisor when supervisor.pid holds no pid", () => {
  const state = stateDir();
  for (const garbage of ["", "hello", "12abc", "-5", "0", "1.5", "99999999999999999999", "\0\0\0"]) {
    writeFileSync(state.pidFile, garbage);
    assert.equal(readPidFile(state), undefined, JSON.stringify(garbage));
    assert.equal(runningSupervisor(state), undefined, JSON.stringify(garbage));
  }
  writeFileSync(state.pidFile, " 4242\n");
  assert.equal(readPidFile(state), 4242, "surrounding whitespace is fine");
});

test("no supervisor when its pid is stale (the process exited)", async () => {
  const state = stateDir();
  const pid = await deadPid();
  writeFileSync(state.pidFile, String(pid));
  assert.equal(runningSupervisor(state), undefined);
  recordSupervisor(state, pid, 12345);
  assert.equal(runningSupervisor(state), undefined);
});

test("a pid the kernel gave to another process is not the supervisor; the recorded one is", async () => {
  const state = stateDir();
  const pid = await sleeper();
  const startTime = startTimeOf(pid) as number;
  assert.ok(Number.isInteger(startTime));
  writeFileSync(state.pidFile, String(pid));
  recordSupervisor(state, pid, startTime + 1);
  assert.equal(runningSupervisor(state), undefined, "a different start time: the pid was reused");
  recordSupervisor(state, pid, startTime);
  assert.equal(runningSupervisor(state), pid, "the recorded start time: our supervisor");
  rmSync(state.processesFile);
  assert.equal(runningSupervisor(state), pid, "no record (a world from before processes.json): pid alone");
});

test("processes.json that is missing, torn or not ours reads as no record", () => {
  const state = stateDir();
  assert.equal(readProcessRecord(state), undefined);
  for (const text of [
    "",
    "{",
    '{"version": 1, "supervisor": {"role": "supervisor", "pid": 7, "startTi',
    "null",
    "[]",
    '{"version": 2, "supervisor": {"role": "supervisor", "pid": 7, "startTime": 1}, "processes": []}',
    '{"version": 1, "supervisor": {"role": "supervisor", "pid": -7, "startTime": 1}, "processes": []}',
    '{"version": 1, "supervisor": {"role": "supervisor", "pid": 7, "startTime": 1}}',
  ]) {
    writeFileSync(state.processesFile, text);
    assert.equal(readProcessRecord(state), undefined, text);
  }
  writeFileSync(
    state.processesFile,
    JSON.stringify({
      version: 1,
      supervisor: { role: "supervisor", pid: 7, startTime: 1 },
      processes: [{ role: "controller", pid: 8, startTime: 2 }, { role: "agent:r1/a" }, "junk"],
    }),
  );
  assert.deepEqual(readProcessRecord(state)?.processes, [{ role: "controller", pid: 8, startTime: 2 }]);
});

test("the supervisor's record: claimed, updated per start, released, and never left half-written", async () => {
  const state = stateDir();
  const record = new ProcessRecord(state);
  record.claim();
  assert.equal(readPidFile(state), process.pid);
  assert.equal(runningSupervisor(state), process.pid);
  const child = await sleeper();
  record.started("controller", child);
  record.started("agent:r1/a", process.pid);
  record.started("controller", child); // a restart replaces the role's entry
  const file = readProcessRecord(state);
  assert.deepEqual(file?.supervisor, {
    role: "supervisor",
    pid: process.pid,
    startTime: startTimeOf(process.pid),
  });
  assert.deepEqual(
    file?.processes.map((p) => [p.role, p.pid, p.startTime]),
    [
      ["controller", child, startTimeOf(child)],
      ["agent:r1/a", process.pid, startTimeOf(process.pid)],
    ],
  );
  assert.deepEqual(
    readdirSync(state.root).sort(),
    ["processes.json", "supervisor.pid"],
    "no temporary files left behind",
  );
  // Another supervisor claimed the folder since: its files stay.
  const other = new ProcessRecord(state, child);
  other.claim();
  record.release();
  assert.equal(readPidFile(state), child);
  other.release();
  assert.deepEqual(readdirSync(state.root), []);
});

test("isAlive tells a live process from a dead one and from a reused pid", async () => {
  const pid = await sleeper();
  const startTime = startTimeOf(pid);
  assert.equal(isAlive(pid), true);
  assert.equal(isAlive(pid, startTime), true);
  assert.equal(isAlive(pid, (startTime as number) + 1), false);
  assert.equal(isAlive(await deadPid()), false);
});
