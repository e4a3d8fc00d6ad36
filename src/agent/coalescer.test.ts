import assert from "node:assert/strict";
import { test } from "node:test";
import { Coalescer } from "./coalescer.js";

/** A hand-driven clock: timers fire only when `advance` passes them. */
function fakeClock() {
  let now = 0;
  const timers: { at: number; fn: () => void }[] = [];
  return {
    now: () => now,
    setTimer: (fn: () => void, ms: number) => {
      const t = { at: now + ms, fn };
      timers.push(t);
      return t;
    },
    clearTimer: (t: unknown) => {
      const i = timers.indexOf(t as { at: number; fn: () => void });
      if (i >= 0) timers.splice(i, 1);
    },
    advance(ms: number) {
      now += ms;
      for (const t of [...timers].sort((a, b) => a.at - b.at)) {
        if (t.at <= now) {
          timers.splice(timers.indexOf(t), 1);
          t.fn();
        }
      }
    },
  };
}

/** A task whose runs finish only when the test says so. */
function manualTask() {
  const waiting: (() => void)[] = [];
  return {
    task: () => new Promise<void>((resolve) => waiting.push(resolve)),
    inFlight: () => waiting.length,
    async finish() {
      waiting.shift()?.();
      for (let i = 0; i < 5; i++) await Promise.resolve();
    },
  };
}

test("requests during a run fold into one more run after it", async () => {
  const clock = fakeClock();
  const t = manualTask();
  const c = new Coalescer(t.task, clock);
  c.request();
  assert.equal(c.runs, 1);
  c.request();
  c.request();
  c.request();
  assert.equal(c.runs, 1, "never two in flight");
  clock.advance(500);
  await t.finish();
  assert.equal(c.runs, 2, "the requests made meanwhile became one run");
  await t.finish();
  assert.equal(c.runs, 2);
  assert.equal(t.inFlight(), 0);
});

test("runs start at least minIntervalMs apart", async () => {
  const clock = fakeClock();
  const t = manualTask();
  const c = new Coalescer(t.task, { ...clock, minIntervalMs: 100 });
  c.request();
  await t.finish();
  clock.advance(30);
  c.request();
  c.request();
  assert.equal(c.runs, 1, "too soon: waits for the interval");
  clock.advance(69);
  assert.equal(c.runs, 1);
  clock.advance(1);
  assert.equal(c.runs, 2);
  await t.finish();
  // A steady stream of requests never exceeds one run per interval.
  for (let ms = 0; ms < 1_000; ms += 10) {
    c.request();
    clock.advance(10);
    if (t.inFlight() > 0) await t.finish();
  }
  assert.ok(c.runs <= 2 + 10, `${c.runs} runs in a second`);
  assert.ok(c.runs >= 2 + 9, `${c.runs} runs in a second`);
});

test("close drops what is scheduled, and a failing task does not stop later runs", async () => {
  const clock = fakeClock();
  let calls = 0;
  const c = new Coalescer(
    async () => {
      calls++;
      throw new Error("controller down");
    },
    { ...clock, minIntervalMs: 100 },
  );
  c.request();
  await c.idle();
  clock.advance(100);
  c.request();
  await c.idle();
  assert.equal(calls, 2);
  clock.advance(10);
  c.request(); // scheduled for later
  c.close();
  clock.advance(1_000);
  await c.idle();
  assert.equal(calls, 2);
});

test("an urgent request needs only the urgent interval since the last start, and brings a scheduled run forward", async () => {
  const clock = fakeClock();
  const t = manualTask();
  const c = new Coalescer(t.task, { ...clock, minIntervalMs: 100, urgentIntervalMs: 10 });
  c.request();
  await t.finish();
  c.request();
  clock.advance(10);
  assert.equal(c.runs, 1, "an ordinary request waits the whole interval");
  c.request(true);
  assert.equal(c.runs, 2, "an urgent one 10 ms after the last start goes at once");
  await t.finish();
  clock.advance(100);
  assert.equal(c.runs, 2, "the scheduled ordinary run was the urgent one");
  c.request(true);
  assert.equal(c.runs, 3);
  c.request(true);
  await t.finish();
  assert.equal(c.runs, 3, "an urgent request made during a run waits for the urgent interval after it");
  clock.advance(10);
  assert.equal(c.runs, 4);
  await t.finish();
});
