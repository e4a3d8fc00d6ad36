/**
 * The failover reconciler against a real control database, driven by heartbeats the way agents
 * would send them: observers' probes, standby positions, the new primary's report.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { sampleTopology } from "../topology/testing.js";
import type { DatabaseReport, Heartbeat, ObserverProbe, WorldEvent } from "../world/contracts.js";
import { buildLayout } from "../world/layout.js";
import {
  healthyHeartbeat,
  ManualClock,
  TEST_TOKENS,
  useTestController,
  withOtherPrimariesReached,
} from "./testing.js";

const LIMIT = { timeout: 60_000 };
const topology = sampleTopology();
const layout = buildLayout(topology, 203);
const clock = new ManualClock();
const api = useTestController({
  topology,
  layout,
  heartbeatTimeoutMs: 3_000,
  clock,
  failover: { tickMs: 50, switchoverTimeoutMs: 5_000 },
});

const enc = encodeURIComponent;
const home = (cell: string) => topology.cells.list.find((c) => c.id === cell)?.home as string;
const zoneOf = (region: string) => `${region}/a`;
/** The zone holding the cell's database in a region. */
const dbZone = (cell: string, region: string) =>
  layout.databases.find((d) => d.cell === cell && d.region === region)?.zone as string;

const call = api.call;

interface Shape {
  /** Observations this zone sends. */
  probes?: ObserverProbe[];
  /** Replaces the zone's database reports. */
  databases?: (d: DatabaseReport) => DatabaseReport;
  /** The desired version the agent says it runs (default: far ahead of any fence). */
  desiredVersion?: number;
  /** The agent's monotonic clock at sending (observations then carry their `ageMs`). */
  sentMonoMs?: number;
}

async function beat(zone: string, shape: Shape = {}): Promise<void> {
  const base = healthyHeartbeat(topology, layout, zone, { desiredVersion: shape.desiredVersion ?? 9_999 });
  const body: Heartbeat = {
    ...base,
    databases: base.databases.map(shape.databases ?? ((d) => d)),
    ...(shape.probes ? { observations: withOtherPrimariesReached(topology, zone, shape.probes) } : {}),
    ...(shape.sentMonoMs === undefined ? {} : { sentMonoMs: shape.sentMonoMs }),
  };
  const res = await call("POST", `/v1/agents/${enc(zone)}/heartbeat`, TEST_TOKENS.agent, body);
  assert.equal(res.status, 204, JSON.stringify(res.body));
}

const down = (target: string, failures = 2): ObserverProbe => ({
  target,
  ok: false,
  consecutiveFailures: failures,
  latencyMs: null,
  detail: "connection refused",
});
const up = (target: string): ObserverProbe => ({
  target,
  ok: true,
  consecutiveFailures: 0,
  latencyMs: 3,
  detail: "",
});

async function cellState(cell: string) {
  const res = await call("GET", "/v1/failover", TEST_TOKENS.reader);
  assert.equal(res.body.reconcilerError, undefined, JSON.stringify(res.body.reconcilerError));
  return res.body.cells.find((c: { cell: { cell: string } }) => c.cell.cell === cell) as {
    cell: { primary: string; epoch: number; fenced: boolean };
    phase: string;
    failover: Record<string, unknown> | null;
  };
}

async function until<T>(
  what: string,
  read: () => Promise<T>,
  ok: (t: T) => boolean,
  timeoutMs = 10_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (ok(value)) return value;
    if (Date.now() > deadline) throw new Error(`${what}: still ${JSON.stringify(value)}`);
    await new Promise((r) => setTimeout(r, 30));
  }
}

async function eventsOf(cell: string): Promise<WorldEvent[]> {
  const res = await call("GET", "/v1/events?limit=1000", TEST_TOKENS.reader);
  return (res.body.events as WorldEvent[]).filter((e) => e.subject === cell);
}

/** A standby's report in `region` of `cell` with its flushed position. */
const standbyAt =
  (cell: string, region: string, flushLsn: string) =>
  (d: DatabaseReport): DatabaseReport =>
    d.id === `${cell}/${region}` ? { ...d, role: "standby", lsn: flushLsn, flushLsn } : d;

test(
  "a partition that isolates only the controller, or cuts one observer off, fails nothing over",
  LIMIT,
  async () => {
    const cell = "cell-0";
    const primary = home(cell);
    const others = ["r1", "r2", "r3"].filter((r) => r !== primary);
    // One observer region cannot reach the primary, the other can.
    await beat(zoneOf(others[0] as string), { probes: [down(`${cell}/${primary}`, 5)] });
    await beat(zoneOf(others[1] as string), { probes: [up(`${cell}/${primary}`)] });
    await new Promise((r) => setTimeout(r, 300));
    assert.equal((await cellState(cell)).phase, "serving");
    // The controller hears nothing fresh (it is the one cut off): old failures do not count.
    clock.advance(10_000);
    await new Promise((r) => setTimeout(r, 300));
    const state = await cellState(cell);
    assert.equal(state.phase, "serving");
    assert.equal(state.cell.fenced, false);
  },
);

test(
  "late reports from paused observers count by when they were observed, and a streak not across the pause",
  LIMIT,
  async () => {
    const cell = "cell-0";
    const target = `${cell}/${home(cell)}`;
    const others = ["r1", "r2", "r3"].filter((r) => r !== home(cell));
    const beatAll = async (sentMonoMs: number, probe: ObserverProbe) => {
      for (const r of others) await beat(zoneOf(r), { sentMonoMs, probes: [probe] });
    };
    const settle = () => new Promise((r) => setTimeout(r, 300));
    await beatAll(1_000, { ...up(target), ageMs: 0 });
    // Both observers froze right after; their reports from then arrive 45 s late.
    clock.advance(45_000);
    await beatAll(1_500, { ...down(target, 5), ageMs: 0 });
    await settle();
    assert.equal((await cellState(cell)).phase, "serving", "a late report counted as fresh");
    // Thawed: the probes that hung time out at once, dated from before the freeze.
    await beatAll(46_000, { ...down(target, 6), ageMs: 44_500 });
    await settle();
    assert.equal((await cellState(cell)).phase, "serving", "a failure from before the pause counted");
    // One fresh failure each: the streak of 7 holds only one failure seen since the pause.
    clock.advance(500);
    await beatAll(46_500, { ...down(target, 7), ageMs: 0 });
    await settle();
    assert.equal((await cellState(cell)).phase, "serving", "a streak counted across the pause");
    clock.advance(500);
    await beatAll(47_000, { ...up(target), ageMs: 0 });
  },
);

test(
  "the primary's region gone: fenced, the standby furthest ahead promoted, writers unfenced once it is primary",
  LIMIT,
  async () => {
    const cell = "cell-1";
    const primary = home(cell);
    const [a, b] = ["r1", "r2", "r3"].filter((r) => r !== primary) as [string, string];
    const before = await cellState(cell);
    // An observer reached the primary before its region went: its start-up grace is over.
    await beat(zoneOf(a), { probes: [up(`${cell}/${primary}`)] });
    clock.advance(1_000);
    await beat(zoneOf(a), { probes: [down(`${cell}/${primary}`)] });
    await beat(zoneOf(b), { probes: [down(`${cell}/${primary}`)] });
    const fenced = await until(
      "fenced",
      () => cellState(cell),
      (s) => s.phase !== "serving",
    );
    assert.equal(fenced.cell.fenced, true);
    clock.advance(1);
    // Positions after the failure: b is further ahead.
    await beat(dbZone(cell, a), { databases: standbyAt(cell, a, "0/5000000") });
    await beat(dbZone(cell, b), { databases: standbyAt(cell, b, "0/5000100") });
    const promoting = await until(
      "promoting",
      () => cellState(cell),
      (s) => s.phase === "promoting",
    );
    assert.equal(promoting.cell.primary, b);
    assert.equal(promoting.cell.epoch, before.cell.epoch + 1);
    assert.equal(promoting.cell.fenced, true, "writers stay fenced until the new primary is confirmed");
    // The new primary reports itself primary.
    await beat(dbZone(cell, b), {
      databases: (d) => (d.id === `${cell}/${b}` ? { ...d, role: "primary", flushLsn: "0/5000200" } : d),
    });
    const serving = await until(
      "serving",
      () => cellState(cell),
      (s) => s.phase === "serving",
    );
    assert.equal(serving.cell.fenced, false);
    assert.equal(serving.cell.primary, b);
    const kinds = (await eventsOf(cell)).map((e) => e.kind);
    for (const k of ["failover.started", "failover.promoting", "failover.completed"])
      assert.ok(kinds.includes(k), k);
    const history = (await call("GET", "/v1/failover", TEST_TOKENS.reader)).body.history as {
      cell: string;
      record: { steps: Record<string, number>; decision: { target: string; proof: string } };
    }[];
    const done = history.find((h) => h.cell === cell);
    assert.ok(done);
    assert.equal(done.record.decision.target, b);
    assert.match(done.record.decision.proof, /2 of the 2 quorum standbys answered/);
    for (const step of ["detected", "fenced", "decided", "promoted", "unfenced"])
      assert.ok(step in done.record.steps, step);
  },
);

test(
  "a quorum standby missing too: consent is asked with an estimate; approval promotes the survivor",
  LIMIT,
  async () => {
    const cell = "cell-2";
    const primary = home(cell);
    const [a, b] = ["r1", "r2", "r3"].filter((r) => r !== primary) as [string, string];
    // Replication history: the primary's flushed position grows over a few seconds.
    for (let i = 1; i <= 4; i++) {
      clock.advance(1_000);
      await beat(dbZone(cell, primary), {
        databases: (d) =>
          d.id === `${cell}/${primary}`
            ? { ...d, flushLsn: `0/${(0x6000000 + i * 0x1000).toString(16)}` }
            : d,
      });
    }
    clock.advance(500);
    // Observers in both other regions cannot reach it; a's standby is gone as well (its zone is
    // silent: the observer of region a is its other zone), b answers behind the primary's last sample.
    const standbyZone = layout.databases.find((d) => d.cell === cell && d.region === a)?.zone;
    const observerA = [`${a}/a`, `${a}/b`].find((z) => z !== standbyZone) as string;
    await beat(zoneOf(b), { probes: [down(`${cell}/${primary}`)] });
    await beat(observerA, { probes: [down(`${cell}/${primary}`)] });
    await until(
      "fenced",
      () => cellState(cell),
      (s) => s.phase !== "serving",
    );
    clock.advance(1);
    await beat(dbZone(cell, b), { databases: standbyAt(cell, b, "0/6002000") });
    // a's standby never answers: the decision is made with what came in once the wait is over.
    clock.advance(2_500);
    const waiting = await until(
      "awaiting consent",
      () => cellState(cell),
      (s) => s.phase === "awaiting-consent",
      15_000,
    );
    const estimate = waiting.failover?.estimate as { bytes: number; seconds: number };
    assert.ok(estimate.bytes > 0, "the estimate counts the bytes past the survivor");
    assert.ok(estimate.seconds > 0);
    assert.equal(waiting.cell.fenced, true);
    // Refused without the explicit flag, and for a cell that is not waiting.
    assert.equal(
      (
        await call("POST", `/v1/cells/${cell}/failover/approve`, TEST_TOKENS.operator, {
          reason: "x",
          acceptDataLoss: false,
        })
      ).status,
      400,
    );
    assert.equal(
      (
        await call("POST", "/v1/cells/cell-0/failover/approve", TEST_TOKENS.operator, {
          reason: "x",
          acceptDataLoss: true,
        })
      ).status,
      409,
    );
    assert.equal(
      (
        await call("POST", `/v1/cells/${cell}/failover/approve`, TEST_TOKENS.reader, {
          reason: "x",
          acceptDataLoss: true,
        })
      ).status,
      403,
    );
    const approved = await call("POST", `/v1/cells/${cell}/failover/approve`, TEST_TOKENS.operator, {
      reason: "region lost, drill",
      acceptDataLoss: true,
    });
    assert.equal(approved.status, 200, JSON.stringify(approved.body));
    assert.equal(approved.body.phase, "promoting");
    assert.equal(approved.body.cell.primary, b);
    const approval = (await eventsOf(cell)).find((e) => e.kind === "failover.approved");
    assert.ok(approval);
    assert.equal(approval.actor, "operator");
    assert.deepEqual(approval.data.estimate, estimate);
    // The survivor becomes primary; later the missing standby returns, further ahead than the
    // promoted position: the loss is measured and recorded.
    await beat(dbZone(cell, b), {
      databases: (d) => (d.id === `${cell}/${b}` ? { ...d, role: "primary", flushLsn: "0/6002100" } : d),
    });
    await until(
      "serving",
      () => cellState(cell),
      (x) => x.phase === "serving",
    );
    // The controller restarts before the missing standby is back: the watch survives in the history.
    await api.restart();
    clock.advance(5_000);
    await beat(dbZone(cell, a), { databases: standbyAt(cell, a, "0/6002400") });
    const measured = await until(
      "the loss to be measured",
      async () => (await eventsOf(cell)).find((e) => e.kind === "failover.loss-measured"),
      (e) => e !== undefined,
    );
    assert.equal(measured?.data.bytes, 0x400);
  },
);

test(
  "switchover: the other standby relays through the target, then fenced until the target has every byte the primary flushed, then promoted; refused when not serving",
  LIMIT,
  async () => {
    const cell = "cell-3";
    const from = home(cell);
    const to = ["r1", "r2", "r3"].find((r) => r !== from) as string;
    const bad = await call("POST", `/v1/cells/${cell}/switchover`, TEST_TOKENS.operator, {
      to: from,
      reason: "x",
    });
    assert.equal(bad.status, 400);
    const started = await call("POST", `/v1/cells/${cell}/switchover`, TEST_TOKENS.operator, {
      to,
      reason: "maintenance",
    });
    assert.equal(started.status, 202, JSON.stringify(started.body));
    assert.equal(started.body.phase, "switching-over");
    // Writes go on while the other standby moves to stream from the target.
    assert.equal(started.body.cell.fenced, false);
    assert.equal(started.body.cell.switchingTo, to, "the desired state names the target");
    const again = await call("POST", `/v1/cells/${cell}/switchover`, TEST_TOKENS.operator, {
      to,
      reason: "twice",
    });
    assert.equal(again.status, 409);
    const relay = ["r1", "r2", "r3"].find((r) => r !== from && r !== to) as string;
    await new Promise((r) => setTimeout(r, 200));
    assert.equal((await cellState(cell)).cell.fenced, false, "fenced before the other standby relays");
    await beat(dbZone(cell, relay), {
      databases: (d) => (d.id === `${cell}/${relay}` ? { ...d, streamingFrom: `${cell}/${to}` } : d),
    });
    const fencedState = await until(
      "fenced once the other standby streams from the target",
      () => cellState(cell),
      (x) => x.cell.fenced && (x.failover as { fenceVersion?: number } | null)?.fenceVersion !== undefined,
    );
    const fenceVersion = (fencedState.failover as { fenceVersion?: number }).fenceVersion ?? 0;
    // Until every agent with a writer for the cell runs the fence, positions do not count.
    const writerZones = [...new Set(layout.writers.filter((w) => w.cell === cell).map((w) => w.zone))];
    assert.ok(fenceVersion > 0, "the fence's desired version is recorded");
    for (const z of writerZones) await beat(z, { desiredVersion: fenceVersion - 1 });
    clock.advance(300);
    await beat(dbZone(cell, from), {
      databases: (d) => (d.id === `${cell}/${from}` ? { ...d, flushLsn: "0/7000100" } : d),
    });
    await beat(dbZone(cell, to), { desiredVersion: 0, databases: standbyAt(cell, to, "0/7000100") });
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(
      (await cellState(cell)).phase,
      "switching-over",
      "positions counted before every writer was fenced",
    );
    for (const z of writerZones) await beat(z, { desiredVersion: fenceVersion });
    await until(
      "every writer fenced",
      () => cellState(cell),
      (x) => (x.failover?.steps as Record<string, number> | undefined)?.writersFenced !== undefined,
    );
    clock.advance(300);
    // The target is behind: nothing happens.
    await beat(dbZone(cell, from), {
      databases: (d) => (d.id === `${cell}/${from}` ? { ...d, flushLsn: "0/7000100" } : d),
    });
    await beat(dbZone(cell, to), { databases: standbyAt(cell, to, "0/7000000") });
    await new Promise((r) => setTimeout(r, 200));
    assert.equal((await cellState(cell)).phase, "switching-over");
    // Caught up: promoted, then unfenced once it reports itself primary.
    await beat(dbZone(cell, to), { databases: standbyAt(cell, to, "0/7000100") });
    const promoting = await until(
      "promoting",
      () => cellState(cell),
      (x) => x.phase === "promoting",
    );
    assert.equal(promoting.cell.primary, to);
    await beat(dbZone(cell, to), {
      databases: (d) => (d.id === `${cell}/${to}` ? { ...d, role: "primary", flushLsn: "0/7000200" } : d),
    });
    const serving = await until(
      "serving",
      () => cellState(cell),
      (x) => x.phase === "serving",
    );
    assert.equal(serving.cell.fenced, false);
    const kinds = (await eventsOf(cell)).map((e) => e.kind);
    for (const k of ["switchover.started", "switchover.promoting", "failover.completed"])
      assert.ok(kinds.includes(k), k);
  },
);

test(
  "failback: once home has been healthy and caught up for the window, the cell switches back home",
  LIMIT,
  async () => {
    // cell-1 failed over away from its home in an earlier test.
    const cell = "cell-1";
    const homeRegion = home(cell);
    const current = (await cellState(cell)).cell.primary;
    assert.notEqual(current, homeRegion, "the earlier test left cell-1 away from home");
    // Home reports a caught-up standby, again and again, in 2-s steps of the clock. Each step waits
    // out a reconciler tick, so the window is measured on the clock, not on how fast the beats go.
    const WINDOW_MS = topology.failover.failbackAfterMs;
    const stepMs = 2_000;
    let healthyMs = 0;
    let switching = await cellState(cell);
    while (switching.phase === "serving" && healthyMs <= WINDOW_MS + 10 * stepMs) {
      clock.advance(stepMs);
      await beat(dbZone(cell, current), {
        databases: (d) =>
          d.id === `${cell}/${current}` ? { ...d, role: "primary", flushLsn: "0/8000000" } : d,
      });
      await beat(dbZone(cell, homeRegion), { databases: standbyAt(cell, homeRegion, "0/8000000") });
      await new Promise((r) => setTimeout(r, 120));
      switching = await cellState(cell);
      if (switching.phase === "serving") healthyMs += stepMs;
    }
    assert.notEqual(switching.phase, "serving", `no failback after ${healthyMs} ms of a healthy home`);
    // Not before the window: the first beats only start it.
    assert.ok(
      healthyMs >= WINDOW_MS - stepMs,
      `failback after only ${healthyMs} ms of a ${WINDOW_MS} ms window`,
    );
    assert.equal(switching.failover?.kind, "failback");
    assert.equal(switching.failover?.to, homeRegion);
  },
);

test(
  "strict: a primary with no standby streaming makes writes wait, and the event log says so",
  LIMIT,
  async () => {
    const cell = "cell-0";
    const primary = (await cellState(cell)).cell.primary;
    clock.advance(1_000);
    await beat(dbZone(cell, primary), {
      databases: (d) => (d.id === `${cell}/${primary}` ? { ...d, role: "primary", standbys: [] } : d),
    });
    await until(
      "writes-waiting",
      async () => (await eventsOf(cell)).map((e) => e.kind),
      (k) => k.includes("durability.writes-waiting"),
    );
    assert.equal((await call("GET", "/v1/failover", TEST_TOKENS.reader)).body.durability, "strict");
    await beat(dbZone(cell, primary), {
      databases: (d) => (d.id === `${cell}/${primary}` ? { ...d, role: "primary" } : d),
    });
    await until(
      "restored",
      async () => (await eventsOf(cell)).map((e) => e.kind),
      (k) => k.includes("durability.restored"),
    );
  },
);
