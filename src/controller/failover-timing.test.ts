/**
 * The topology's failover settings drive the controller: two worlds that differ only in them, each
 * on a manual clock, with agents' heartbeats sent the way the topology compiled them.
 *
 * - `failover.detection`: observers report failed probes at the compiled interval; the failure is
 *   declared after the number of failed probes the topology says, so a detection of 10 s declares
 *   proportionally later than 3 s.
 * - `failover.promotion`: with a quorum standby silent, the decision waits that long for its
 *   position (the position wait), then asks for consent.
 * - `failover.failbackAfter`: a cell away from home switches back once its home standby has been
 *   healthy and caught up for exactly that long.
 *
 * Every assertion is on clock values, none on wall time.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { sampleTopology } from "../topology/testing.js";
import type { DatabaseReport, ObserverProbe } from "../world/contracts.js";
import { buildLayout } from "../world/layout.js";
import {
  healthyHeartbeat,
  ManualClock,
  reconciled,
  TEST_TOKENS,
  useTestController,
  withOtherPrimariesReached,
} from "./testing.js";

const LIMIT = { timeout: 60_000 };

function world(
  failover: { detection: string; promotion: string; failbackAfter: string },
  addressBase: number,
) {
  const topology = sampleTopology((t) => {
    t.failover = failover;
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

const fast = world({ detection: "3s", promotion: "2s", failbackAfter: "10s" }, 211);
const slow = world({ detection: "10s", promotion: "6s", failbackAfter: "30s" }, 212);

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
      ...(shape.probes ? { observations: withOtherPrimariesReached(w.topology, zone, shape.probes) } : {}),
    },
  );
  assert.equal(res.status, 204, JSON.stringify(res.body));
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

/** The zone holding the cell's database in a region. */
const dbZone = (w: World, cell: string, region: string) =>
  w.layout.databases.find((d) => d.cell === cell && d.region === region)?.zone as string;

/** The cell as `GET /v1/failover` shows it, after a reconciler pass that saw everything sent so far. */
async function cellAfterPass(w: World, cell: string) {
  const body = await reconciled(w.api, w.clock);
  return body.cells.find((c: { cell: { cell: string } }) => c.cell.cell === cell) as {
    cell: { primary: string };
    phase: string;
    failover: { kind: string; to?: string; startedAtMs: number; steps: Record<string, number> } | null;
  };
}

/** Sends `beats` `ms` of the clock from now, then lets the clock pass the last millisecond (see failPrimary). */
async function after(w: World, ms: number, beats: () => Promise<void>) {
  w.clock.advance(ms - 1);
  await beats();
  w.clock.advance(1);
}

/** A database report of `cell` in `region` as a standby or primary at `flushLsn`. */
const as =
  (cell: string, region: string, role: "primary" | "standby", flushLsn: string) =>
  (d: DatabaseReport): DatabaseReport =>
    d.id === `${cell}/${region}` ? { ...d, role, lsn: flushLsn, flushLsn } : d;

test(
  "failover.promotion: the decision waits that long for a silent quorum standby, then asks for consent",
  LIMIT,
  async () => {
    const waited: number[] = [];
    for (const w of [fast, slow]) {
      const cell = "cell-2";
      const primary = w.topology.cells.list.find((c) => c.id === cell)?.home as string;
      const [answering] = w.topology.regions.map((r) => r.name).filter((r) => r !== primary) as [string];
      await failPrimary(w, cell, false);
      const started = await cellAfterPass(w, cell);
      assert.equal(started.phase, "failing-over");
      const startedAtMs = started.failover?.startedAtMs as number;
      // One standby answers right after the failure; the other never does.
      w.clock.advance(1);
      await beat(w, dbZone(w, cell, answering), { databases: as(cell, answering, "standby", "0/5000000") });
      const waitMs = w.topology.failover.positionWaitMs;
      w.clock.advance(startedAtMs + waitMs - 1 - w.clock.nowMs);
      assert.equal((await cellAfterPass(w, cell)).phase, "failing-over", "decided before the wait was over");
      w.clock.advance(1);
      const decided = await cellAfterPass(w, cell);
      assert.equal(decided.phase, "awaiting-consent");
      waited.push((decided.failover?.steps.consentAsked as number) - startedAtMs);
    }
    assert.deepEqual(waited, [2_000, 6_000]);
    assert.deepEqual(waited, [fast.topology.failover.promotionMs, slow.topology.failover.promotionMs]);
  },
);

test(
  "failover.failbackAfter: a cell away from home goes back once home has been healthy for exactly that long",
  LIMIT,
  async () => {
    const windows: number[] = [];
    for (const w of [fast, slow]) {
      const cell = "cell-3";
      const home = w.topology.cells.list.find((c) => c.id === cell)?.home as string;
      const away = w.topology.regions.map((r) => r.name).find((r) => r !== home) as string;
      // Move the cell away with a switchover: every writer fenced, the target caught up, promoted.
      const moved = await w.api.call("POST", `/v1/cells/${cell}/switchover`, TEST_TOKENS.operator, {
        to: away,
        reason: "away from home for the test",
      });
      assert.equal(moved.status, 202, JSON.stringify(moved.body));
      // No standby reports relaying through the target: the cell is fenced once the prepare time is up.
      await after(w, 3_000, async () => {});
      await after(w, 1, async () => {
        for (const z of new Set(w.layout.writers.filter((x) => x.cell === cell).map((x) => x.zone)))
          await beat(w, z);
      });
      assert.ok((await cellAfterPass(w, cell)).failover?.steps.writersFenced !== undefined);
      await after(w, 500, async () => {
        await beat(w, dbZone(w, cell, home), { databases: as(cell, home, "primary", "0/9000000") });
        await beat(w, dbZone(w, cell, away), { databases: as(cell, away, "standby", "0/9000000") });
      });
      assert.equal((await cellAfterPass(w, cell)).phase, "promoting");
      await after(w, 500, () =>
        beat(w, dbZone(w, cell, away), { databases: as(cell, away, "primary", "0/9000100") }),
      );
      const serving = await cellAfterPass(w, cell);
      assert.equal(serving.phase, "serving");
      assert.equal(serving.cell.primary, away);
      // From now on, every second: the new primary and a caught-up standby at home.
      const healthyBeat = async () => {
        await beat(w, dbZone(w, cell, away), { databases: as(cell, away, "primary", "0/9000100") });
        await beat(w, dbZone(w, cell, home), { databases: as(cell, home, "standby", "0/9000100") });
      };
      await after(w, 1_000, healthyBeat);
      const healthySince = w.clock.nowMs;
      let state = await cellAfterPass(w, cell);
      while (state.phase === "serving" && w.clock.nowMs - healthySince <= 60_000) {
        await after(w, 1_000, healthyBeat);
        state = await cellAfterPass(w, cell);
      }
      assert.equal(state.phase, "switching-over");
      assert.equal(state.failover?.kind, "failback");
      assert.equal(state.failover?.to, home);
      windows.push((state.failover?.startedAtMs as number) - healthySince);
    }
    // Home counts as healthy from the pass that its first healthy beat starts (1 ms before the clock's
    // step that follows it) or from the next: the window is failbackAfter to the millisecond step.
    const expected = [fast.topology.failover.failbackAfterMs, slow.topology.failover.failbackAfterMs];
    assert.deepEqual(expected, [10_000, 30_000]);
    windows.forEach((measured, i) => {
      const want = expected[i] as number;
      assert.ok(
        measured === want || measured === want - 1,
        `window ${measured} ms for failbackAfter ${want} ms`,
      );
    });
  },
);
