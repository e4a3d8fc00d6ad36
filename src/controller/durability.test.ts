/**
 * Durability policies against a real control database: `available` drops a cell with no
 * out-of-region standby left to asynchronous commit and back; `strict` only says writes wait.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { sampleTopology } from "../topology/testing.js";
import type { DatabaseReport, DesiredState, WorldEvent } from "../world/contracts.js";
import { buildLayout } from "../world/layout.js";
import { healthyHeartbeat, ManualClock, reconciled, TEST_TOKENS, useTestController } from "./testing.js";

// A detection below the default 3 s, so that what derives from it differs from any default.
const topology = sampleTopology((t) => {
  for (const s of t.services) s.durability = "available";
  t.failover = { detection: "2s", manualFailback: [1] };
});
const layout = buildLayout(topology, 205);
const clock = new ManualClock();
// No heartbeatTimeoutMs: the controller takes the freshness the detection compiled to.
const api = useTestController({ topology, layout, clock, failover: { tickMs: 50 } });
/** As the agents call: with the agent token. */
const call = (method: "GET" | "POST", url: string, payload?: unknown) =>
  api.call(method, url, TEST_TOKENS.agent, payload);

const cell = "cell-0";
const home = topology.cells.list.find((c) => c.id === cell)?.home as string;
const zone = layout.databases.find((d) => d.cell === cell && d.region === home)?.zone as string;

/** A heartbeat from `z` at a desired version past any fence, its databases changed by `change`. */
async function beatZone(z: string, change: (d: DatabaseReport) => DatabaseReport = (d) => d): Promise<void> {
  const base = healthyHeartbeat(topology, layout, z, { desiredVersion: 9_999 });
  const res = await call("POST", `/v1/agents/${encodeURIComponent(z)}/heartbeat`, {
    ...base,
    databases: base.databases.map(change),
  });
  assert.equal(res.status, 204);
}

/** The primary's heartbeat, with its standbys streaming or none. */
async function beat(streaming: boolean): Promise<void> {
  const base = healthyHeartbeat(topology, layout, zone);
  const databases = base.databases.map((d) =>
    d.id === `${cell}/${home}` && !streaming ? { ...d, standbys: [] } : d,
  );
  const res = await call("POST", `/v1/agents/${encodeURIComponent(zone)}/heartbeat`, { ...base, databases });
  assert.equal(res.status, 204);
}

async function until(what: string, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 30));
  }
}

const commitOf = async () =>
  ((await call("GET", `/v1/agents/${encodeURIComponent(zone)}/desired`)).body as DesiredState).cells.find(
    (c) => c.cell === cell,
  )?.commit ?? "quorum";

const kinds = async (): Promise<string[]> => {
  const res = await api.call("GET", "/v1/events?limit=1000", TEST_TOKENS.reader);
  return (res.body.events as WorldEvent[]).filter((e) => e.subject === cell).map((e) => e.kind);
};

test("available: no standby for failover.detection drops the cell to asynchronous commit, a standby back restores quorum", async () => {
  // The grace time is the topology's detection (compiled once; the controller reads it from there).
  const graceMs = topology.failover.asyncAfterMs;
  assert.equal(graceMs, topology.failover.detectionMs);
  await beat(false);
  await reconciled(api, clock);
  clock.advance(graceMs - 1);
  await beat(false);
  await reconciled(api, clock);
  assert.equal(await commitOf(), "quorum", "not before the grace time");
  clock.advance(1);
  await beat(false);
  await reconciled(api, clock);
  assert.equal(await commitOf(), "async", "at the grace time");
  assert.ok((await kinds()).includes("durability.async"));
  await beat(true);
  await until("quorum commit", async () => (await commitOf()) === "quorum");
  assert.ok((await kinds()).includes("durability.quorum"));
  const doc = await api.call("GET", "/v1/failover", TEST_TOKENS.reader);
  assert.equal(doc.body.durability, "available");
});

test("an agent is unreachable after the freshness failover.detection compiled to (no other default)", async () => {
  const { freshMs } = topology.failover.detection;
  assert.equal(freshMs, 2_500);
  const status = await api.call("GET", "/v1/status", TEST_TOKENS.reader);
  assert.equal(status.status, 200);
  assert.equal(status.body.world.heartbeatTimeoutMs, freshMs);
});

test("a cell listed in failover.manualFailback stays away from home until an operator switches it back", async () => {
  const c = "cell-1";
  const home1 = topology.cells.list.find((x) => x.id === c)?.home as string;
  const away = ["r1", "r2", "r3"].find((r) => r !== home1) as string;
  const zoneOf = (region: string) =>
    layout.databases.find((d) => d.cell === c && d.region === region)?.zone as string;
  const op = await api.call("POST", `/v1/cells/${c}/switchover`, TEST_TOKENS.operator, {
    to: away,
    reason: "move away for the test",
  });
  assert.equal(op.status, 202, JSON.stringify(op.body));
  // No standby reports relaying through the target: the cell is fenced once the prepare time is up.
  clock.advance(3_000);
  await until("fenced", async () => {
    const res = await api.call("GET", "/v1/failover", TEST_TOKENS.reader);
    const cells = (res.body as { cells: { cell: { cell: string; fenced: boolean } }[] }).cells;
    return cells.find((x) => x.cell.cell === c)?.cell.fenced === true;
  });
  // Every writer zone runs the fence; positions equal; the target promotes.
  for (const z of new Set(layout.writers.filter((w) => w.cell === c).map((w) => w.zone))) await beatZone(z);
  const phase = async () => {
    const res = await api.call("GET", "/v1/failover", TEST_TOKENS.reader);
    const doc = res.body as {
      cells: {
        cell: { cell: string; primary: string };
        phase: string;
        failover: { steps?: Record<string, number> } | null;
      }[];
    };
    return doc.cells.find((x) => x.cell.cell === c);
  };
  await until(
    "every writer fenced",
    async () => (await phase())?.failover?.steps?.writersFenced !== undefined,
  );
  clock.advance(500);
  await beatZone(zoneOf(home1), (d) => (d.id === `${c}/${home1}` ? { ...d, flushLsn: "0/9000000" } : d));
  await beatZone(zoneOf(away), (d) =>
    d.id === `${c}/${away}` ? { ...d, role: "standby", flushLsn: "0/9000000" } : d,
  );
  await until("promoting", async () => (await phase())?.phase === "promoting");
  await beatZone(zoneOf(away), (d) =>
    d.id === `${c}/${away}` ? { ...d, role: "primary", flushLsn: "0/9000100" } : d,
  );
  await until("serving away from home", async () => (await phase())?.phase === "serving");
  // Home healthy and caught up for well past the window: no failback for a manual cell. Each step
  // waits out a reconciler tick (50 ms), so the reconciler sees the clock move through the window.
  for (let i = 0; i < 40; i++) {
    clock.advance(2_000);
    await beatZone(zoneOf(away), (d) =>
      d.id === `${c}/${away}` ? { ...d, role: "primary", flushLsn: "0/9000100" } : d,
    );
    await beatZone(zoneOf(home1), (d) =>
      d.id === `${c}/${home1}` ? { ...d, role: "standby", flushLsn: "0/9000100" } : d,
    );
    await new Promise((r) => setTimeout(r, 120));
    assert.equal((await phase())?.phase, "serving", `failback at step ${i}`);
  }
  const after = await phase();
  assert.equal(after?.phase, "serving");
  assert.equal(after?.cell.primary, away);
});
