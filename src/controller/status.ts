/**
 * The whole world at a glance, for `ringfence status` (`GET /v1/status`, reader token). Pure: built
 * from a store snapshot, the world index, the time and the heartbeat timeout. The types are in
 * `status-model.ts`.
 *
 * ```text
 * {
 *   generatedAt: ISO time,
 *   world:   { name, desiredVersion, bucketTableVersion, heartbeatTimeoutMs, rollup },
 *   regions: [{ name, drain | null, rollup,
 *               zones: [{ id, host, drain | null, rollup,
 *                         agent: { reachable, lastHeartbeatAgeMs | null, pid | null, startedAt | null,
 *                                  desiredVersion | null, inSync } }] }],
 *   cells:   [{ cell, home, primary, epoch, fenced, syncQuorum, synchronousStandbyNames | null, rollup,
 *               databases: [{ id, region, zone, expectedRole: primary|standby, role: primary|standby|unknown,
 *                             health, state, restarts | null, pid | null, lsn | null,
 *                             replication: { state, syncState, lagBytes, flushLagMs, replayLagMs } | null }] }],
 *   instances: [{ id, service, kind, cell, region, zone, state, health, restarts | null, pid | null,
 *                 detail, drain | null, rollup }],
 *   routers: [{ region, reachable, lastHeartbeatAgeMs | null, stale | null, tableVersion | null,
 *               tableBehind, requests | null, errors | null, pid | null }],
 *   drains:  Drain[]        (active, oldest first)
 *   events:  WorldEvent[]   (the last 20, oldest first)
 * }
 * rollup = { health: healthy | degraded | unhealthy, reason }
 * ```
 *
 * `health` and `state` are what a reachable agent last reported, `unknown` when the agent is silent
 * for longer than the heartbeat timeout (its last report is not trusted). `replication` of a standby
 * comes from its primary's report (matched by `application_name`). Roll-ups take the worst issue:
 * an instance is unhealthy when unknown, failed or stopped, degraded while starting or backing off;
 * a cell is unhealthy when fenced, when its primary database is not healthy, when fewer standbys
 * than its synchronous quorum are streaming (writes would wait) or when a service has no healthy
 * instance (degraded when its fallback still serves); a zone is unhealthy when its agent is
 * unreachable; a region is unhealthy when all its zones are, degraded when some are or its router
 * is not reporting. A drained region, zone or instance (also one inside a drained zone or region;
 * `drain` is the id of the most specific drain covering it) is at least degraded, with the reason
 * `drained: <the drain's reason>`, and a drained instance does not count as serving its cell.
 */
import type { Drain, WorldEvent } from "../world/contracts.js";
import { DrainLookup } from "./drains.js";
import { durabilityPolicy } from "./durability.js";
import { Observations } from "./observations.js";
import { type Issue, rollUp } from "./rollup.js";
import type {
  CellStatus,
  DatabaseStatus,
  InstanceStatus,
  RegionStatus,
  RouterStatus,
  WorldStatus,
  ZoneStatus,
} from "./status-model.js";
import type { Snapshot } from "./store.js";
import { processId, type WorldIndex } from "./world-index.js";

export type { RollUp, RollUpHealth } from "./rollup.js";
export type {
  CellStatus,
  DatabaseStatus,
  InstanceStatus,
  RegionStatus,
  ReplicationStatus,
  RouterStatus,
  WorldStatus,
  ZoneStatus,
} from "./status-model.js";

const drainedIssue = (drain: Drain): Issue => ({ health: "degraded", reason: `drained: ${drain.reason}` });

function silence(ageMs: number | null): string {
  return ageMs === null ? "agent has never reported" : `agent not heard from for ${ageMs} ms`;
}

export interface StatusInput {
  readonly index: WorldIndex;
  readonly snapshot: Snapshot;
  readonly events: readonly WorldEvent[];
  readonly nowMs: number;
  readonly heartbeatTimeoutMs: number;
}

export function buildStatus(input: StatusInput): WorldStatus {
  const { index, snapshot, nowMs } = input;
  const { topology, layout } = index;
  const seen = new Observations(snapshot.agents, snapshot.routers, nowMs, input.heartbeatTimeoutMs);
  const drains = new DrainLookup(snapshot.drains);

  const instances: InstanceStatus[] = layout.instances.map((slot) => {
    const agent = seen.agent(slot.zone);
    const report = seen.process(processId("instance", slot.id));
    const state = report?.state ?? "unknown";
    const health = report?.health ?? "unknown";
    const detail =
      report?.detail ?? (agent.reachable ? "not reported by its agent" : silence(agent.lastHeartbeatAgeMs));
    const issues: Issue[] = [];
    const said = `${state}, ${health}${detail ? `: ${detail}` : ""}`;
    if (!report) issues.push({ health: "unhealthy", reason: `unknown: ${detail}` });
    else if (health === "degraded" || state === "starting" || state === "backoff") {
      issues.push({ health: "degraded", reason: said });
    } else if (health !== "healthy" || state !== "running")
      issues.push({ health: "unhealthy", reason: said });
    const drain = drains.instance(slot);
    if (drain) issues.push(drainedIssue(drain));
    return {
      id: slot.id,
      service: slot.service,
      kind: slot.kind,
      cell: slot.cell,
      region: slot.region,
      zone: slot.zone,
      state,
      health,
      restarts: report?.restarts ?? null,
      pid: report?.pid ?? null,
      detail,
      drain: drain?.id ?? null,
      rollup: rollUp(issues, "running and healthy"),
    };
  });

  const cells: CellStatus[] = index.orderCells(snapshot.cells).map((cell) => {
    const home = topology.cells.list.find((c) => c.id === cell.cell)?.home ?? cell.primary;
    const slots = layout.databases.filter((d) => d.cell === cell.cell);
    const primarySlot = slots.find((d) => d.region === cell.primary);
    const primaryReport = primarySlot ? seen.database(primarySlot.id) : undefined;
    const databases: DatabaseStatus[] = slots.map((slot) => {
      const proc = seen.process(processId("database", slot.id));
      const report = seen.database(slot.id);
      const standby = primaryReport?.standbys.find((s) => s.applicationName === slot.applicationName);
      return {
        id: slot.id,
        region: slot.region,
        zone: slot.zone,
        expectedRole: slot.region === cell.primary ? "primary" : "standby",
        role: report?.role ?? "unknown",
        health: proc?.health ?? "unknown",
        state: proc?.state ?? "unknown",
        restarts: proc?.restarts ?? null,
        pid: proc?.pid ?? null,
        lsn: report?.lsn ?? null,
        replication:
          slot.region === cell.primary || !standby
            ? null
            : {
                state: standby.state,
                syncState: standby.syncState,
                lagBytes: standby.lagBytes,
                flushLagMs: standby.flushLagMs,
                replayLagMs: standby.replayLagMs,
              },
      };
    });

    const issues: Issue[] = [];
    if (cell.fenced)
      issues.push({ health: "unhealthy", reason: "fenced: its writer endpoints refuse writes" });
    const primary = databases.find((d) => d.expectedRole === "primary");
    if (!primary)
      issues.push({ health: "unhealthy", reason: `no database in primary region ${cell.primary}` });
    else if (primary.health !== "healthy") {
      issues.push({ health: "unhealthy", reason: `primary database ${primary.id} is ${primary.health}` });
    } else if (primary.role !== "primary") {
      issues.push({
        health: "unhealthy",
        reason: `primary database ${primary.id} reports role ${primary.role}`,
      });
    }
    const quorum = topology.cells.syncQuorum;
    if (primaryReport && quorum > 0) {
      const streaming = primaryReport.standbys.filter(
        (s) => s.state === "streaming" && (s.syncState === "sync" || s.syncState === "quorum"),
      ).length;
      if (streaming < quorum) {
        issues.push({
          health: "unhealthy",
          reason: `${streaming} of ${quorum} synchronous standbys streaming: commits wait`,
        });
      }
    }
    for (const d of databases) {
      if (d.expectedRole === "standby" && d.health !== "healthy") {
        issues.push({ health: "degraded", reason: `standby ${d.id} is ${d.health}` });
      }
    }
    if (cell.primary !== home)
      issues.push({ health: "degraded", reason: `primary away from home region ${home}` });
    for (const service of topology.services) {
      const mine = instances.filter((i) => i.cell === cell.cell && i.service === service.name);
      // A drained instance may be healthy, but routers send it nothing.
      const serves = (i: InstanceStatus) => i.health === "healthy" && i.drain === null;
      const serving = mine.filter((i) => i.kind === "service" && serves(i)).length;
      const total = mine.filter((i) => i.kind === "service").length;
      const drained = mine.filter((i) => i.kind === "service" && i.drain !== null).length;
      const fallbacks = mine.filter((i) => i.kind === "fallback" && serves(i)).length;
      const because = drained > 0 ? ` (${drained} drained)` : "";
      if (serving === 0) {
        issues.push(
          fallbacks > 0
            ? {
                health: "degraded",
                reason: `no healthy ${service.name} instance${because}; its fallback serves`,
              }
            : { health: "unhealthy", reason: `no healthy ${service.name} instance${because}` },
        );
      } else if (serving < total) {
        issues.push({
          health: "degraded",
          reason: `${serving} of ${total} ${service.name} instances ${drained > 0 ? `serving${because}` : "healthy"}`,
        });
      }
    }
    return {
      cell: cell.cell,
      home,
      primary: cell.primary,
      epoch: cell.epoch,
      fenced: cell.fenced,
      syncQuorum: quorum,
      synchronousStandbyNames: primaryReport?.synchronousStandbyNames ?? null,
      durability: { policy: durabilityPolicy(topology), commit: cell.commit ?? "quorum" },
      rollup: rollUp(
        issues,
        `primary in ${cell.primary}; ${databases.length} databases and ${
          instances.filter((i) => i.cell === cell.cell).length
        } instances healthy`,
      ),
      databases,
    };
  });

  const routers: RouterStatus[] = layout.regions.map((r) => {
    const view = seen.router(r.name);
    return {
      region: r.name,
      reachable: view.reachable,
      lastHeartbeatAgeMs: view.lastHeartbeatAgeMs,
      stale: view.report?.stale ?? null,
      tableVersion: view.report?.tableVersion ?? null,
      tableBehind: view.report !== undefined && view.report.tableVersion < snapshot.desiredVersion,
      requests: view.report?.requests ?? null,
      errors: view.report?.errors ?? null,
      pid: view.report?.pid ?? null,
    };
  });

  const regions: RegionStatus[] = layout.regions.map((region) => {
    const regionDrain = drains.region(region.name);
    // Zones whose only issue is their region's drain: the region says so once for all of them.
    const onlyRegionDrained = new Set<string>();
    const zones: ZoneStatus[] = layout.zones
      .filter((z) => z.region === region.name)
      .map((zone) => {
        const agent = seen.agent(zone.id);
        const issues: Issue[] = [];
        if (!agent.reachable) issues.push({ health: "unhealthy", reason: silence(agent.lastHeartbeatAgeMs) });
        else {
          const placed = index.processesIn(zone.id);
          const bad = placed.filter((p) => seen.health(p.id) !== "healthy");
          if (bad.length > 0) {
            issues.push({
              health: "degraded",
              reason: `${bad.length} of ${placed.length} processes not healthy (${bad
                .slice(0, 3)
                .map((p) => p.id)
                .join(", ")}${bad.length > 3 ? ", ..." : ""})`,
            });
          }
        }
        const drain = drains.zone(zone);
        if (drain === regionDrain && regionDrain !== undefined && issues.length === 0) {
          onlyRegionDrained.add(zone.id);
        }
        if (drain) issues.push(drainedIssue(drain));
        const reported = agent.report;
        return {
          id: zone.id,
          host: zone.host,
          drain: drain?.id ?? null,
          agent: {
            reachable: agent.reachable,
            lastHeartbeatAgeMs: agent.lastHeartbeatAgeMs,
            pid: reported?.pid ?? null,
            startedAt: reported?.startedAt ?? null,
            desiredVersion: reported?.desiredVersion ?? null,
            inSync:
              agent.reachable && reported !== undefined && reported.desiredVersion >= snapshot.desiredVersion,
          },
          rollup: rollUp(issues, "agent reporting, every process healthy"),
        };
      });
    const issues: Issue[] = [];
    if (regionDrain) issues.push(drainedIssue(regionDrain));
    const down = zones.filter((z) => z.rollup.health === "unhealthy");
    if (zones.length > 0 && down.length === zones.length) {
      issues.push({
        health: "unhealthy",
        reason: `every zone unhealthy: ${down.map((z) => z.rollup.reason).join("; ")}`,
      });
    } else {
      for (const z of zones) {
        if (z.rollup.health !== "healthy" && !onlyRegionDrained.has(z.id))
          issues.push({ health: "degraded", reason: `zone ${z.id}: ${z.rollup.reason}` });
      }
    }
    const router = routers.find((r) => r.region === region.name);
    if (router && !router.reachable) {
      issues.push({
        health: "degraded",
        reason:
          router.lastHeartbeatAgeMs === null
            ? "router has never reported"
            : `router not heard from for ${router.lastHeartbeatAgeMs} ms`,
      });
    } else if (router?.stale) issues.push({ health: "degraded", reason: "router serves a persisted table" });
    return {
      name: region.name,
      drain: regionDrain?.id ?? null,
      rollup: rollUp(issues, `${zones.length} zones healthy`),
      zones,
    };
  });

  const worldIssues: Issue[] = [];
  for (const r of regions) {
    if (r.rollup.health !== "healthy") {
      worldIssues.push({ health: r.rollup.health, reason: `region ${r.name}: ${r.rollup.reason}` });
    }
  }
  for (const c of cells) {
    if (c.rollup.health !== "healthy")
      worldIssues.push({ health: c.rollup.health, reason: `${c.cell}: ${c.rollup.reason}` });
  }

  return {
    generatedAt: new Date(nowMs).toISOString(),
    world: {
      name: topology.name,
      desiredVersion: snapshot.desiredVersion,
      bucketTableVersion: snapshot.bucketTable.version,
      heartbeatTimeoutMs: input.heartbeatTimeoutMs,
      rollup: rollUp(worldIssues, `${regions.length} regions and ${cells.length} cells healthy`),
    },
    regions,
    cells,
    instances,
    routers,
    drains: snapshot.drains,
    events: input.events,
  };
}
