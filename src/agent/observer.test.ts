import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { freePort } from "../lib/ports.js";
import { signalGroup } from "../lib/postgres.js";
import { startTestCluster, type TestCluster } from "../lib/postgres-testing.js";
import { type ObserverTarget, PrimaryObserver } from "./observer.js";

let cluster: TestCluster;
let targets: ObserverTarget[] = [];
let changes = 0;
let observer: PrimaryObserver;

before(async () => {
  cluster = await startTestCluster();
  const { host, port } = cluster.primary;
  targets = [
    { id: "cell-0/r2", endpoint: { host, port } },
    { id: "cell-1/r2", endpoint: { host: "127.0.0.1", port: await freePort() } }, // nothing listens
  ];
  observer = new PrimaryObserver({
    targets: () => targets,
    onChange: () => {
      changes++;
    },
  });
});

after(async () => {
  await observer?.stop();
  await cluster?.stop();
});

const probeOf = (id: string) => observer.observations().find((o) => o.target === id);

test("a primary that answers is ok with its latency; one never reached is not reported (it may still be starting)", async () => {
  await observer.round();
  const ok = probeOf("cell-0/r2");
  assert.equal(ok?.ok, true);
  assert.equal(ok?.consecutiveFailures, 0);
  assert.ok(ok?.latencyMs !== null && (ok?.latencyMs ?? -1) >= 0);
  await observer.round();
  assert.equal(probeOf("cell-1/r2"), undefined, "a target never reached was reported");
  assert.equal(changes, 0, "a target never reached asked for a heartbeat");
});

test("a reached primary that hangs fails within the short timeouts, each failure and its recovery reported at once", async () => {
  const before = changes;
  signalGroup(cluster.primary.process, "SIGSTOP");
  try {
    // Each round ends by the probe's own timeout (query, then connect), not by a hang or a reset;
    // how long those timeouts take in real time is not this test's business.
    await observer.round(); // the persistent connection's query times out
    assert.equal(probeOf("cell-0/r2")?.ok, false);
    assert.equal(probeOf("cell-0/r2")?.consecutiveFailures, 1);
    assert.match(probeOf("cell-0/r2")?.detail ?? "", /timeout/i);
    await observer.round(); // a new connection cannot be made
    assert.equal(probeOf("cell-0/r2")?.consecutiveFailures, 2);
    assert.match(probeOf("cell-0/r2")?.detail ?? "", /timeout/i);
    assert.equal(changes, before + 2);
  } finally {
    signalGroup(cluster.primary.process, "SIGCONT");
  }
  await observer.round();
  assert.equal(probeOf("cell-0/r2")?.ok, true);
  assert.equal(changes, before + 3, "the recovery did not ask for a heartbeat");
  await observer.round();
  assert.equal(changes, before + 3, "a steady success asked for a heartbeat");
});

test("a target that moves is forgotten with its connection", async () => {
  targets = targets.slice(1);
  await observer.round();
  assert.deepEqual(observer.observations(), []);
});

test("started, it probes in rounds until stopped", async () => {
  const rounds: number[] = [];
  const timed = new PrimaryObserver({
    targets: () => {
      rounds.push(Date.now());
      return targets;
    },
    intervalMs: 100,
  });
  timed.start();
  try {
    while (rounds.length < 4) await new Promise((r) => setTimeout(r, 20));
  } finally {
    await timed.stop();
  }
  assert.equal(timed.observations().length, 0, "stop closes and forgets its targets");
});

test("a probe that outran its own timeouts (this observer was stopped) is dropped; a streak does not span a gap", async () => {
  let nowMs = 0;
  const frozen = new PrimaryObserver({
    targets: () => [{ id: "cell-0/r2", endpoint: cluster.primary }],
    now: () => nowMs,
  });
  try {
    await frozen.round();
    assert.equal(frozen.observations(nowMs)[0]?.ok, true);
    assert.equal(frozen.observations(nowMs + 700)[0]?.ageMs, 700, "the age is measured on its clock");
    signalGroup(cluster.primary.process, "SIGSTOP");
    try {
      // While the query hangs, 45 s pass on this observer's clock: it was the one stopped.
      const jump = setTimeout(() => {
        nowMs += 45_000;
      }, 100);
      await frozen.round();
      clearTimeout(jump);
      const kept = frozen.observations(nowMs)[0];
      assert.equal(kept?.ok, true, "a timeout that fired late counted as a failure");
      assert.equal(kept?.ageMs, 45_000);
      await frozen.round(); // on time now: a real failure
      assert.equal(frozen.observations(nowMs)[0]?.ok, false);
      assert.equal(frozen.observations(nowMs)[0]?.consecutiveFailures, 1);
      nowMs += 10_000; // no probe for 10 s (the observer was stopped between probes)
      await frozen.round();
      assert.equal(frozen.observations(nowMs)[0]?.consecutiveFailures, 1, "the streak spanned the gap");
      await frozen.round();
      assert.equal(frozen.observations(nowMs)[0]?.consecutiveFailures, 2);
    } finally {
      signalGroup(cluster.primary.process, "SIGCONT");
    }
  } finally {
    await frozen.stop();
  }
});
