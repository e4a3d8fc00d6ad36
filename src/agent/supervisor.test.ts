import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { test } from "node:test";
import { Supervised, type SupervisorEvent } from "./supervisor.js";

const node = (code: string) => () => spawn(process.execPath, ["-e", code], { stdio: "ignore" });
const until = async (check: () => boolean, timeoutMs = 10_000) => {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 20));
  }
};

test("a process that exits is restarted with growing backoff, reported as events", async () => {
  const events: SupervisorEvent[] = [];
  const s = new Supervised({
    id: "p",
    spawn: node("process.exit(3)"),
    initialBackoffMs: 20,
    onEvent: (e) => events.push(e),
  });
  s.start();
  try {
    await until(() => s.restarts >= 3);
    const delays = events.filter((e) => e.kind === "restart-scheduled").map((e) => e.data.delayMs as number);
    assert.deepEqual(delays.slice(0, 3), [20, 40, 80]);
    assert.ok(events.some((e) => e.kind === "exited" && e.message.includes("exit code 3")));
  } finally {
    await s.stop();
  }
  assert.equal(s.state, "stopped");
});

test("SIGKILL of a running process brings it back with a new pid", async () => {
  const s = new Supervised({ id: "p", spawn: node("setInterval(() => {}, 1000)"), initialBackoffMs: 10 });
  s.start();
  try {
    await until(() => s.pid !== null);
    const first = s.pid as number;
    process.kill(first, "SIGKILL");
    await until(() => s.pid !== null && s.pid !== first);
    assert.equal(s.restarts, 1);
  } finally {
    await s.stop();
  }
});

test("stop is graceful first and forceful after the grace time, and nothing restarts after it", async () => {
  const graceful = new Supervised({
    id: "g",
    spawn: node("process.on('SIGTERM', () => process.exit(0)); setInterval(() => {}, 1000)"),
  });
  graceful.start();
  await until(() => graceful.pid !== null);
  await new Promise((r) => setTimeout(r, 200)); // let it install its handler
  await graceful.stop();
  assert.equal(graceful.pid, null);
  const stubborn = new Supervised({
    id: "s",
    spawn: node("process.on('SIGTERM', () => {}); setInterval(() => {}, 1000)"),
    stopGraceMs: 300,
  });
  stubborn.start();
  await until(() => stubborn.pid !== null);
  await new Promise((r) => setTimeout(r, 200));
  const started = Date.now();
  await stubborn.stop();
  assert.ok(Date.now() - started >= 250, "waited for the grace time before SIGKILL");
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(stubborn.state, "stopped");
  assert.equal(stubborn.pid, null);
});

test("a command that cannot be spawned is retried, not crashed on", async () => {
  const events: SupervisorEvent[] = [];
  const s = new Supervised({
    id: "missing",
    spawn: () => spawn("/nonexistent/binary", [], { stdio: "ignore" }),
    initialBackoffMs: 10,
    onEvent: (e) => events.push(e),
  });
  s.start();
  try {
    await until(() => events.filter((e) => e.kind === "spawn-failed").length >= 2);
    assert.match(events.find((e) => e.kind === "spawn-failed")?.message ?? "", /ENOENT/);
  } finally {
    await s.stop();
  }
});

test("a held process that exits is not restarted, and stop() still ends it cleanly", async () => {
  const events: SupervisorEvent[] = [];
  const s = new Supervised({
    id: "h",
    spawn: node("setInterval(() => {}, 1000)"),
    initialBackoffMs: 10,
    onEvent: (e) => events.push(e),
  });
  s.start();
  await until(() => s.pid !== null);
  s.hold();
  process.kill(s.pid as number, "SIGKILL");
  // The exit handler decides about a restart in the same turn as it clears the pid.
  await until(() => s.pid === null);
  assert.deepEqual(
    events.filter((e) => e.kind === "exited" || e.kind === "restart-scheduled"),
    [],
    "no unexpected exit, no restart",
  );
  assert.equal(s.restarts, 0);
  await s.stop();
  assert.equal(s.state, "stopped");
});
