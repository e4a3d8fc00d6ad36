/**
 * The fenced old primary's own flushed position as the proof of a zero-loss failover, against a
 * real control database: it counts only once every writer of the cell runs the fence and from a
 * report the old primary's agent sent (by its own clock) after that. Until then, and when the best
 * standby has not reached it, the controller waits for the standbys and asks for consent. The
 * primary's region is cut off from the other regions (their observers fail to reach it) while its
 * agent still talks to the controller; one quorum standby's database is down.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { sampleTopology } from "../topology/testing.js";
import type { DatabaseReport, ObserverProbe } from "../world/contracts.js";
import { buildLayout } from "../world/layout.js";
import { FENCED_READ_MARGIN_MS } from "./fence-proof.js";
import { healthyHeartbeat, ManualClock, reconciled, TEST_TOKENS, useTestController } from "./testing.js";

const LIMIT = { timeout: 60_000 };
const topology = sampleTopology();
const layout = buildLayout(topology, 213);
const clock = new ManualClock();
const api = useTestController({ topology, layout, clock, failover: { tickMs: 50 } });
/** The agents' monotonic clocks read the controller's clock minus this (no skew, no delay). */
const MONO_BASE = Date.parse("2030-01-01T00:00:00.000Z") - 5_000;

interface Shape {
  databases?: (d: DatabaseReport) => DatabaseReport;
  probes?: ObserverProbe[];
  desiredVersion?: number;
  /** When the agent sent it, on its monotonic clock; by default now. */
  sentMonoMs?: number;
}

async function beat(zone: string, shape: Shape = {}): Promise<void> {
  const base = healthyHeartbeat(topology, layout, zone, { desiredVersion: shape.desiredVersion ?? 9_999 });
  const res = await api.call("POST", `/v1/agents/${encodeURIComponent(zone)}/heartbeat`, TEST_TOKENS.agent, {
    ...base,
    databases: base.databases.map(shape.databases ?? ((d) => d)),
    sentMonoMs: shape.sentMonoMs ?? clock.nowMs - MONO_BASE,
    // The observers report only the primary under test: with nothing else to probe they count as
    // witnesses (docs/failover.md), and no report about another cell's primary links the two tests.
    ...(shape.probes ? { observations: shape.probes.map((p) => ({ ...p, ageMs: 0 })) } : {}),
  });
  assert.equal(res.status, 204, JSON.stringify(res.body));
}

/** The cell after a reconciler pass that saw everything sent so far (one clock millisecond on). */
async function cellNow(cell: string) {
  clock.advance(1);
  const body = await reconciled(api, clock);
  return body.cells.find((c: { cell: { cell: string } }) => c.cell.cell === cell) as {
    cell: { primary: string };
    phase: string;
    failover: {
      startedAtMs: number;
      fenceVersion?: number;
      steps: Record<string, number>;
      decision?: { target: string; proof?: string; reason?: string };
    } | null;
  };
}

function cellWorld(cell: string) {
  const primary = topology.cells.list.find((c) => c.id === cell)?.home as string;
  const [a, b] = topology.regions.map((r) => r.name).filter((r) => r !== primary) as [string, string];
  const slot = (region: string) => layout.databases.find((d) => d.cell === cell && d.region === region);
  const dbZone = (region: string) => slot(region)?.zone as string;
  // Observers in the zone of each other region that holds none of this cell's databases, so that
  // their heartbeats say nothing about its standbys.
  const observer = (region: string) =>
    topology.zones.find((z) => z.region === region && z.id !== dbZone(region))?.id as string;
  // The cell's writer endpoints run beside its databases: the agents below are all of them.
  const writerZones = new Set(layout.writers.filter((w) => w.cell === cell).map((w) => w.zone));
  assert.deepEqual(writerZones, new Set([primary, a, b].map(dbZone)));
  const names = [a, b].map((r) => `"${slot(r)?.applicationName}"`).join(", ");
  let failures = 0;
  const at = (region: string, report: Partial<DatabaseReport>) => (d: DatabaseReport) =>
    d.id === `${cell}/${region}` ? { ...d, ...report } : d;
  return {
    primary,
    a,
    b,
    /** Both other regions' observers fail one more probe of the primary. */
    async cutOff() {
      failures++;
      const probe: ObserverProbe = {
        target: `${cell}/${primary}`,
        ok: false,
        consecutiveFailures: failures + 1,
        latencyMs: null,
        detail: "timeout",
      };
      for (const r of [a, b]) await beat(observer(r), { probes: [probe] });
    },
    /** The old primary's agent: its database primary, flushed at `flushLsn`, committing ANY 1 of a and b. */
    primaryAt: (flushLsn: string, shape: Shape = {}) =>
      beat(dbZone(primary), {
        ...shape,
        databases: at(primary, {
          role: "primary",
          lsn: flushLsn,
          flushLsn,
          synchronousStandbyNames: `ANY 1 (${names})`,
        }),
      }),
    /** Standby a's agent: its database is down. */
    aDown: (shape: Shape = {}) =>
      beat(dbZone(a), { ...shape, databases: at(a, { role: "unknown", lsn: null, flushLsn: null }) }),
    /** Standby b's agent: its database received up to `flushLsn`. */
    bAt: (flushLsn: string, shape: Shape = {}) =>
      beat(dbZone(b), { ...shape, databases: at(b, { role: "standby", lsn: flushLsn, flushLsn }) }),
  };
}

test(
  "the fenced old primary's own flushed position proves zero loss: promoted at once, the dead standby not waited for",
  LIMIT,
  async () => {
    const cell = "cell-0";
    const w = cellWorld(cell);
    await w.primaryAt("0/5000000");
    clock.advance(1_000);
    await w.cutOff();
    const started = await cellNow(cell);
    assert.equal(started.phase, "failing-over");
    assert.ok(started.failover?.fenceVersion, "the fence's desired version is recorded");
    const startedAtMs = started.failover.startedAtMs;
    // Every writer's agent runs the fence; a's database is down, b has what the primary flushed
    // (positions count from reports received after the failure was declared).
    clock.advance(1);
    await w.primaryAt("0/5000000");
    await w.aDown();
    await w.bAt("0/5000000");
    const fenced = await cellNow(cell);
    assert.equal(fenced.phase, "failing-over", "the primary's report from before the fence proves nothing");
    const writersFencedAt = fenced.failover?.steps.writersFenced as number;
    assert.ok(writersFencedAt >= startedAtMs);
    // The old primary (cut off from the other regions, not from the controller) reports again.
    clock.advance(FENCED_READ_MARGIN_MS + 50);
    await w.cutOff();
    await w.primaryAt("0/5000000");
    const promoting = await cellNow(cell);
    assert.equal(promoting.phase, "promoting");
    assert.equal(promoting.cell.primary, w.b);
    assert.match(
      promoting.failover?.decision?.proof ?? "",
      /fenced old primary confirmed its flushed position/,
    );
    // Decided by the proof, not by the end of the wait for the standbys' positions. Both times are on
    // the test's manual clock (advanced by 1 + FENCED_READ_MARGIN_MS + 50 ms above), not wall-clock.
    const decidedAt = promoting.failover?.steps.decided as number;
    assert.ok(decidedAt - startedAtMs < topology.failover.positionWaitMs);
  },
);

test(
  "no proof while a writer's agent is not fenced, from a report held back on the way, or ahead of the survivor; consent, then a late proof",
  LIMIT,
  async () => {
    const cell = "cell-1";
    const w = cellWorld(cell);
    await w.primaryAt("0/6000000");
    clock.advance(1_000);
    await w.cutOff();
    const started = await cellNow(cell);
    assert.equal(started.phase, "failing-over");
    const fence = started.failover?.fenceVersion as number;
    const phase = async () => (await cellNow(cell)).phase;

    // a's agent (its database down) still runs a version before the fence: its writer may still
    // forward commits, so nothing the old primary says counts.
    clock.advance(1);
    await w.aDown({ desiredVersion: fence - 1 });
    await w.bAt("0/6000000");
    await w.primaryAt("0/6000000");
    clock.advance(FENCED_READ_MARGIN_MS + 50);
    await w.primaryAt("0/6000000");
    assert.equal(await phase(), "failing-over");
    assert.equal((await cellNow(cell)).failover?.steps.writersFenced, undefined);

    // Fenced now; but the old primary's next report was sent before the margin and arrives late.
    await w.aDown();
    const writersFencedAt = (await cellNow(cell)).failover?.steps.writersFenced as number;
    assert.ok(writersFencedAt !== undefined);
    const sentMonoMs = writersFencedAt + FENCED_READ_MARGIN_MS - 100 - MONO_BASE;
    clock.advance(FENCED_READ_MARGIN_MS + 50);
    await w.cutOff();
    await w.primaryAt("0/6000000", { sentMonoMs });
    assert.equal(await phase(), "failing-over", "a report sent before the margin counted");

    // Sent after the margin, but the primary flushed more than b received: not proven.
    await w.primaryAt("0/6000100");
    assert.equal(await phase(), "failing-over");

    // The wait for the standbys' positions ends: consent is asked.
    const startedAtMs = started.failover?.startedAtMs as number;
    clock.advance(startedAtMs + topology.failover.positionWaitMs - 1 - clock.nowMs);
    await w.cutOff();
    const waiting = await cellNow(cell);
    assert.equal(waiting.phase, "awaiting-consent");
    assert.match(waiting.failover?.decision?.reason ?? "", /could not confirm its position/);

    // b receives the rest (its walreceiver caught up): the late proof promotes without consent.
    clock.advance(100);
    await w.bAt("0/6000100");
    await w.primaryAt("0/6000100");
    const promoting = await cellNow(cell);
    assert.equal(promoting.phase, "promoting");
    assert.equal(promoting.cell.primary, w.b);
    assert.match(promoting.failover?.decision?.proof ?? "", /fenced old primary confirmed/);
  },
);
