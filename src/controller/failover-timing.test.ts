/**
 * `failover.detection` drives the controller's verdict: two worlds that differ only in it, each on
 * a manual clock, with observers reporting failed probes at the interval the topology compiled. The
 * failure is declared after the number of failed probes the topology says, so a detection of 10 s
 * declares proportionally later than 3 s. Every assertion is on clock values, none on wall time.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { sampleTopology } from "../topology/testing.js";
import type { DatabaseReport, ObserverProbe } from "../world/contracts.js";
import { buildLayout } from "../world/layout.js";
import {
  type ControllerFixture,
  healthyHeartbeat,
  ManualClock,
  TEST_TOKENS,
  useTestController,
} from "./testing.js";

const LIMIT = { timeout: 60_000 };

function world(detection: string, addressBase: number) {
  const topology = sampleTopology((t) => {
    t.failover = { detection };
  });
  const layout = buildLayout(topology, addressBase);
  const clock = new ManualClock();
  const api = useTestController({
    topology,
    layout,
    heartbeatTimeoutMs: 3_000,
    clock,
    failover: { tickMs: 50 },
  });
  return { topology, layout, clock, api };
}

const fast = world("3s", 211);
const slow = world("10s", 212);

type World = typeof fast;

const probe = (target: string, failures: number): ObserverProbe => ({
  target,
  ok: failures === 0,
  consecutiveFailures: failures,
  latencyMs: failures === 0 ? 3 : null,
  detail: failures === 0 ? "" : "connection refused",
});

async function beat(
  w: World,
  zone: string,
  shape: { probes?: ObserverProbe[]; databases?: (d: DatabaseReport) => DatabaseReport } = {},
) {
  const base = healthyHeartbeat(w.topology, w.layout, zone, { desiredVersion: 9_999 });
  const res = await w.api.call(
    "POST",
    `/v1/agents/${encodeURIComponent(zone)}/heartbeat`,
    TEST_TOKENS.agent,
    {
      ...base,
      databases: base.databases.map(shape.databases ?? ((d) => d)),
      ...(shape.probes ? { observations: shape.probes } : {}),
    },
  );
  assert.equal(res.status, 204, JSON.stringify(res.body));
}

/** Waits (in real time, asserting nothing about it) for a reconciler pass that began at or after the clock's now. */
async function reconciled(api: ControllerFixture, clock: ManualClock) {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const body = (await api.call("GET", "/v1/failover", TEST_TOKENS.reader)).body;
    assert.equal(body.reconcilerError, undefined, JSON.stringify(body.reconcilerError));
    if (body.reconciledAtMs !== undefined && body.reconciledAtMs >= clock.nowMs) return body;
    if (Date.now() > deadline) throw new Error(`no reconciler pass since ${clock.nowMs}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * Observers in both other regions fail one probe every probe interval from now on (a dead primary
 * refuses connections at once); the primary's own agent says its database is down when `agentDown`.
 * Returns the clock time from the failure to the verdict and the failed probes reported by then.
 */
async function failPrimary(w: World, cell: string, agentDown: boolean) {
  const { topology, layout, clock, api } = w;
  const primary = topology.cells.list.find((c) => c.id === cell)?.home as string;
  const others = topology.regions.map((r) => r.name).filter((r) => r !== primary);
  const target = `${cell}/${primary}`;
  const primaryZone = layout.databases.find((d) => d.id === target)?.zone as string;
  const { probeIntervalMs } = topology.failover.detection;
  for (const region of others) await beat(w, `${region}/a`, { probes: [probe(target, 0)] });
  clock.advance(1_000);
  const failedAt = clock.nowMs;
  for (let failures = 1; failures <= 50; failures++) {
    // One probe interval per failed probe, the last millisecond after the heartbeats: a pass that
    // begins after them has seen them.
    clock.advance(probeIntervalMs - 1);
    const heardAt = clock.nowMs;
    if (agentDown)
      await beat(w, primaryZone, {
        databases: (d) => (d.id === target ? { ...d, role: "unknown" } : d),
      });
    for (const region of others) await beat(w, `${region}/a`, { probes: [probe(target, failures)] });
    clock.advance(1);
    const body = await reconciled(api, clock);
    const state = body.cells.find((c: { cell: { cell: string } }) => c.cell.cell === cell);
    if (state.phase === "serving") continue;
    assert.equal(state.phase, "failing-over");
    // Declared by the pass the last heartbeats started (it may read the clock before it moves on)
    // or by the next one: either way on these reports, at the end of this probe interval.
    const detected = state.failover.steps.detected as number;
    assert.ok(detected === heardAt || detected === heardAt + 1, `declared at ${detected - failedAt} ms`);
    return { elapsedMs: heardAt + 1 - failedAt, failures };
  }
  throw new Error(`${cell} was never declared failed`);
}

test("the topology's failover.detection is what the controller's verdict waits for", LIMIT, async () => {
  assert.equal(fast.topology.failover.detection.failuresToDeclare, 2);
  assert.equal(slow.topology.failover.detection.failuresToDeclare, 7);
  // GET /v1/failover shows the settings in force.
  const shown = (await slow.api.call("GET", "/v1/failover", TEST_TOKENS.reader)).body.detection;
  assert.deepEqual(shown, slow.topology.failover.detection);

  const a = await failPrimary(fast, "cell-0", false);
  const b = await failPrimary(slow, "cell-0", false);
  assert.deepEqual(a, { elapsedMs: 2 * 500, failures: 2 });
  assert.deepEqual(b, { elapsedMs: 7 * 500, failures: 7 });
  // Proportional: 10 s of detection declares 3.5 times later than 3 s (the whole probes that fit).
  assert.equal(b.elapsedMs / a.elapsedMs, 3.5);
  for (const [w, r] of [
    [fast, a],
    [slow, b],
  ] as const)
    assert.ok(r.elapsedMs <= w.topology.failover.detection.declaredWithinMs);
});

test(
  "with the primary's agent reporting its database down, half the failed probes suffice",
  LIMIT,
  async () => {
    const a = await failPrimary(fast, "cell-1", true);
    const b = await failPrimary(slow, "cell-1", true);
    assert.deepEqual(a, { elapsedMs: 500, failures: 1 });
    assert.deepEqual(b, { elapsedMs: 3 * 500, failures: 3 });
  },
);
