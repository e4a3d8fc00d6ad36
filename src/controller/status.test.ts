import assert from "node:assert/strict";
import { test } from "node:test";
import { defaultBucketTable } from "../topology/placement.js";
import { sampleTopology } from "../topology/testing.js";
import { encodeBucketTable, type Heartbeat, type ProcessReport } from "../world/contracts.js";
import { buildLayout } from "../world/layout.js";
import { problemPath } from "./http-errors.js";
import { rollUp } from "./rollup.js";
import { buildRoutingTable } from "./routing.js";
import { buildStatus } from "./status.js";
import type { AgentRecord, Snapshot } from "./store.js";
import { healthyHeartbeat } from "./testing.js";
import { WorldIndex } from "./world-index.js";

const topology = sampleTopology((data) => {
  data.services[0].fallback = { command: "app-fallback", routes: ["GET /things/:id"], instances: 1 };
});
const layout = buildLayout(topology, 203);
const index = new WorldIndex(topology, layout);
const NOW = Date.parse("2030-01-01T00:00:10.000Z");
const TIMEOUT = 3_000;

function snapshot(
  change: { beat?: (zone: string) => Heartbeat | undefined; fenced?: string[]; ageMs?: number } = {},
): Snapshot {
  const agents: AgentRecord[] = [];
  for (const zone of layout.zones) {
    const hb = change.beat ? change.beat(zone.id) : healthyHeartbeat(topology, layout, zone.id);
    if (!hb) continue;
    const { events: _events, ...report } = hb;
    agents.push({ zone: zone.id, lastHeartbeatMs: NOW - (change.ageMs ?? 0), report });
  }
  return {
    desiredVersion: 1,
    cells: topology.cells.list.map((c) => ({
      cell: c.id,
      primary: c.home,
      epoch: 1,
      fenced: change.fenced?.includes(c.id) ?? false,
    })),
    restarts: {},
    bucketTable: {
      version: 1,
      runs: encodeBucketTable(defaultBucketTable(topology.cells.buckets, topology.cells.count)),
    },
    agents,
    routers: layout.regions.map((r) => ({
      region: r.name,
      lastHeartbeatMs: NOW,
      report: { region: r.name, pid: 1, tableVersion: 1, stale: false, requests: 0, errors: 0 },
    })),
  };
}

const status = (s: Snapshot) =>
  buildStatus({ index, snapshot: s, events: [], nowMs: NOW, heartbeatTimeoutMs: TIMEOUT });
const cell = (s: Snapshot, id: string) => {
  const found = status(s).cells.find((c) => c.cell === id);
  assert.ok(found, id);
  return found;
};

/** A heartbeat where `match`ing processes are reported with `patch`. */
const beatWith =
  (match: (p: ProcessReport) => boolean, patch: Partial<ProcessReport>) =>
  (zone: string): Heartbeat =>
    healthyHeartbeat(topology, layout, zone, { change: (p) => (match(p) ? { ...p, ...patch } : p) });

test("everything reported healthy rolls up healthy everywhere", () => {
  const s = status(snapshot());
  assert.equal(s.world.rollup.health, "healthy", s.world.rollup.reason);
  assert.ok(s.regions.every((r) => r.rollup.health === "healthy"));
  assert.ok(s.cells.every((c) => c.rollup.health === "healthy"));
  assert.ok(s.instances.every((i) => i.rollup.health === "healthy" && i.state === "running"));
  assert.equal(s.instances.length, layout.instances.length);
});

test("a fenced cell is unhealthy, and says why", () => {
  const c = cell(snapshot({ fenced: ["cell-1"] }), "cell-1");
  assert.equal(c.rollup.health, "unhealthy");
  assert.match(c.rollup.reason, /fenced/);
});

test("fewer streaming quorum standbys than the sync quorum make a cell unhealthy", () => {
  const s = snapshot({
    beat: (zone) => {
      const hb = healthyHeartbeat(topology, layout, zone);
      return {
        ...hb,
        databases: hb.databases.map((d) => ({
          ...d,
          standbys: d.standbys.map((x) => ({ ...x, state: "catchup", syncState: "potential" })),
        })),
      };
    },
  });
  const c = cell(s, "cell-0");
  assert.equal(c.rollup.health, "unhealthy");
  assert.match(c.rollup.reason, /0 of 1 synchronous standbys streaming/);
  assert.equal(c.databases.find((d) => d.region !== c.primary)?.replication?.syncState, "potential");
});

test("an unhealthy standby degrades its cell; an unhealthy primary fails it", () => {
  const standby = cell(
    snapshot({ beat: beatWith((p) => p.id === "database:cell-0/r2", { health: "unhealthy" }) }),
    "cell-0",
  );
  assert.equal(standby.rollup.health, "degraded");
  assert.match(standby.rollup.reason, /standby cell-0\/r2 is unhealthy/);
  const primary = cell(
    snapshot({
      beat: beatWith((p) => p.id === "database:cell-0/r1", { health: "unhealthy", state: "failed" }),
    }),
    "cell-0",
  );
  assert.equal(primary.rollup.health, "unhealthy");
});

test("a service without healthy instances: degraded while its fallback serves, unhealthy without", () => {
  const service = (p: ProcessReport) => p.id.startsWith("instance:app/cell-2/");
  const withFallback = cell(snapshot({ beat: beatWith(service, { health: "unhealthy" }) }), "cell-2");
  assert.equal(withFallback.rollup.health, "degraded");
  assert.match(withFallback.rollup.reason, /fallback serves/);
  const all = (p: ProcessReport) => service(p) || p.id.startsWith("instance:app-fallback/cell-2/");
  const without = cell(snapshot({ beat: beatWith(all, { health: "unhealthy" }) }), "cell-2");
  assert.equal(without.rollup.health, "unhealthy");
  assert.match(without.rollup.reason, /no healthy app instance/);
});

test("a starting instance is degraded, a failed one unhealthy", () => {
  const id = layout.instances[0]?.id as string;
  const starting = status(
    snapshot({ beat: beatWith((p) => p.id === `instance:${id}`, { state: "starting", health: "unknown" }) }),
  );
  assert.equal(starting.instances.find((i) => i.id === id)?.rollup.health, "degraded");
  const failed = status(
    snapshot({
      beat: beatWith((p) => p.id === `instance:${id}`, {
        state: "failed",
        health: "unhealthy",
        detail: "exit 1",
      }),
    }),
  );
  const inst = failed.instances.find((i) => i.id === id);
  assert.equal(inst?.rollup.health, "unhealthy");
  assert.match(inst?.rollup.reason ?? "", /exit 1/);
});

test("a region whose agents are all silent is unhealthy; routing shows its instances unknown", () => {
  const s = snapshot({
    beat: (zone) => (zone.startsWith("r3/") ? undefined : healthyHeartbeat(topology, layout, zone)),
  });
  const r3 = status(s).regions.find((r) => r.name === "r3");
  assert.equal(r3?.rollup.health, "unhealthy");
  assert.ok(r3?.zones.every((z) => !z.agent.reachable && z.agent.lastHeartbeatAgeMs === null));
  const routing = buildRoutingTable(index, s, NOW, TIMEOUT);
  for (const i of layout.instances)
    assert.equal(routing.health[i.id], i.region === "r3" ? "unknown" : "healthy");
  // At exactly the timeout an agent still counts; one millisecond later it does not.
  assert.ok(status(snapshot({ ageMs: TIMEOUT })).regions.every((r) => r.rollup.health === "healthy"));
  assert.ok(status(snapshot({ ageMs: TIMEOUT + 1 })).regions.every((r) => r.rollup.health === "unhealthy"));
});

test("roll-ups keep the worst issues and count the rest", () => {
  assert.deepEqual(rollUp([], "fine"), { health: "healthy", reason: "fine" });
  assert.deepEqual(
    rollUp(
      [
        { health: "degraded", reason: "d" },
        { health: "unhealthy", reason: "u1" },
        { health: "unhealthy", reason: "u2" },
      ],
      "fine",
    ),
    { health: "unhealthy", reason: "u1; u2" },
  );
  const many = Array.from({ length: 5 }, (_, i) => ({ health: "degraded" as const, reason: `r${i}` }));
  assert.equal(rollUp(many, "fine").reason, "r0; r1; r2; and 2 more");
});

test("validation problems name fields as clients write them", () => {
  assert.equal(problemPath("body", "/processes/0/id"), "body.processes[0].id");
  assert.equal(problemPath("body", "", "reason"), "body.reason");
  assert.equal(problemPath("querystring", "/limit"), "querystring.limit");
  assert.equal(problemPath("body", ""), "body");
});
