import assert from "node:assert/strict";
import { test } from "node:test";
import { defaultBucketTable } from "../topology/placement.js";
import { sampleTopology } from "../topology/testing.js";
import {
  type Drain,
  type DrainTarget,
  encodeBucketTable,
  type Heartbeat,
  type ProcessReport,
} from "../world/contracts.js";
import { buildLayout } from "../world/layout.js";
import { DrainLookup, drainNumber } from "./drains.js";
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
  change: {
    beat?: (zone: string) => Heartbeat | undefined;
    fenced?: string[];
    ageMs?: number;
    drains?: Drain[];
  } = {},
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
    drains: change.drains ?? [],
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
  assert.ok(s.cells.every((c) => c.durability.policy === "strict" && c.durability.commit === "quorum"));
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

const drain = (n: number, kind: DrainTarget["kind"], id: string, reason: string): Drain => ({
  id: `drain-${n}`,
  target: { kind, id },
  reason,
  createdAt: "2030-01-01T00:00:05.000Z",
});

test("a drained region is degraded with the drain's reason, once, and its instances stop serving", () => {
  const drains = [drain(1, "region", "r2", "planned maintenance")];
  const s = status(snapshot({ drains }));
  assert.deepEqual(s.drains, drains);
  const r2 = s.regions.find((r) => r.name === "r2");
  assert.deepEqual(r2?.rollup, { health: "degraded", reason: "drained: planned maintenance" });
  assert.equal(r2?.drain, "drain-1");
  assert.ok(
    r2?.zones.every((z) => z.drain === "drain-1" && z.rollup.reason === "drained: planned maintenance"),
  );
  assert.ok(s.regions.filter((r) => r.name !== "r2").every((r) => r.rollup.health === "healthy" && !r.drain));
  for (const i of s.instances) {
    assert.equal(i.drain, i.region === "r2" ? "drain-1" : null, i.id);
    assert.equal(i.rollup.health, i.region === "r2" ? "degraded" : "healthy", i.id);
  }
  // Two of the three regions still serve every cell.
  const c = cell(snapshot({ drains }), "cell-0");
  assert.equal(c.rollup.health, "degraded");
  assert.match(c.rollup.reason, /4 of 6 app instances serving \(2 drained\)/);
  assert.equal(s.world.rollup.health, "degraded");
  assert.match(s.world.rollup.reason, /region r2: drained: planned maintenance/);
  // The routing table carries the drains as they are.
  assert.deepEqual(buildRoutingTable(index, snapshot({ drains }), NOW, TIMEOUT).drains, drains);
});

test("a drained zone and a drained instance are marked; the most specific drain is named", () => {
  const slot = layout.instances.find((i) => i.zone === "r1/a" && i.kind === "service");
  const other = layout.instances.find((i) => i.zone === "r1/b" && i.kind === "service");
  assert.ok(slot && other);
  const drains = [
    drain(1, "zone", "r1/a", "bad rack"),
    drain(2, "instance", slot.id, "leaking memory"),
    drain(3, "instance", other.id, "canary"),
  ];
  const s = status(snapshot({ drains }));
  const zone = s.regions.flatMap((r) => r.zones).find((z) => z.id === "r1/a");
  assert.deepEqual(zone?.rollup, { health: "degraded", reason: "drained: bad rack" });
  const r1 = s.regions.find((r) => r.name === "r1");
  assert.equal(r1?.rollup.health, "degraded");
  assert.equal(r1?.rollup.reason, "zone r1/a: drained: bad rack");
  const inst = s.instances.find((i) => i.id === slot.id);
  assert.equal(inst?.drain, "drain-2");
  assert.equal(inst?.rollup.reason, "drained: leaking memory");
  const lone = s.instances.find((i) => i.id === other.id);
  assert.deepEqual(lone?.rollup, { health: "degraded", reason: "drained: canary" });
  // A zone with only an instance drained stays healthy: the instance says it.
  assert.equal(s.regions.flatMap((r) => r.zones).find((z) => z.id === "r1/b")?.rollup.health, "healthy");
  // An unhealthy drained instance is unhealthy first.
  const failing = status(
    snapshot({ drains, beat: beatWith((p) => p.id === `instance:${other.id}`, { health: "unhealthy" }) }),
  ).instances.find((i) => i.id === other.id);
  assert.equal(failing?.rollup.health, "unhealthy");
});

test("a cell whose every healthy instance is drained serves from its fallback", () => {
  const drains = layout.instances
    .filter((i) => i.cell === "cell-1" && i.kind === "service")
    .map((i, n) => drain(n + 1, "instance", i.id, "evacuate"));
  const c = cell(snapshot({ drains }), "cell-1");
  assert.equal(c.rollup.health, "degraded");
  assert.match(c.rollup.reason, /no healthy app instance \(6 drained\); its fallback serves/);
});

test("drain lookups prefer the most specific drain; drain ids parse", () => {
  const lookup = new DrainLookup([
    drain(1, "region", "r1", "region"),
    drain(2, "zone", "r1/a", "zone"),
    drain(3, "instance", "app/cell-0/r1/0", "instance"),
  ]);
  assert.equal(lookup.instance({ id: "app/cell-0/r1/0", zone: "r1/a", region: "r1" })?.id, "drain-3");
  assert.equal(lookup.instance({ id: "app/cell-0/r1/1", zone: "r1/a", region: "r1" })?.id, "drain-2");
  assert.equal(lookup.instance({ id: "app/cell-0/r1/1", zone: "r1/b", region: "r1" })?.id, "drain-1");
  assert.equal(lookup.instance({ id: "app/cell-0/r2/1", zone: "r2/b", region: "r2" }), undefined);
  assert.equal(lookup.zone({ id: "r1/b", region: "r1" })?.id, "drain-1");
  assert.equal(drainNumber("drain-12"), 12);
  for (const bad of ["drain-0", "drain-", "drain-01", "drain-1x", "12", "drain-1234567890123456"]) {
    assert.equal(drainNumber(bad), undefined, bad);
  }
});
