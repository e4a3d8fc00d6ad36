/**
 * What the agent of a zone runs: the layout's databases, writer endpoints and service instances
 * placed in the zone, each with its runner (a supervised PostgreSQL, an endpoint inside the agent's
 * own process, a supervised service instance), and how they are reported to the controller.
 */
import { dirname } from "node:path";
import { findPgBinaries, pgRunAs } from "../lib/postgres.js";
import type { Topology } from "../topology/model.js";
import type { CellState, Health, ProcessReport } from "../world/contracts.js";
import type { DatabaseSlot, InstanceSlot, Layout, WriterSlot } from "../world/layout.js";
import { dataDirOf, pgTemplateDir, type StateDir, type WorldConfig } from "../world/state.js";
import { DatabaseRunner } from "./database.js";
import { InstanceRunner } from "./instance.js";
import type { Supervised, SupervisorEvent } from "./supervisor.js";
import { WriterEndpoint } from "./writer.js";

export interface ZoneProcesses {
  readonly databases: DatabaseRunner[];
  readonly writers: { slot: WriterSlot; endpoint: WriterEndpoint }[];
  readonly instances: InstanceRunner[];
}

export interface ZoneProcessOptions {
  readonly zone: string;
  readonly state: StateDir;
  readonly world: WorldConfig;
  readonly topology: Topology;
  readonly layout: Layout;
  readonly ringfenceBin: string;
  /** A cell's state as the agent last knew it from the desired state. */
  readonly cell: (cell: string) => CellState | undefined;
  readonly onEvent: (e: SupervisorEvent) => void;
  /** A failover event about the instance in `slot` (`database.promoted`, ...). */
  readonly onDatabaseEvent: (
    slot: DatabaseSlot,
    kind: string,
    message: string,
    data: Record<string, unknown>,
  ) => void;
  /** Asks for a heartbeat now. */
  readonly onUrgentReport: () => void;
  /** A service instance's health changed (see InstanceRunner.probe). */
  readonly onInstanceHealth?: (slot: InstanceSlot, health: Health, detail: string) => void;
}

/** The runners of everything the layout places in the zone, none of them started yet. */
export function zoneProcesses(options: ZoneProcessOptions): ZoneProcesses {
  const { zone, layout, state, world, topology } = options;
  const bin = findPgBinaries();
  const runAs = pgRunAs();
  const databases = layout.databases
    .filter((d) => d.zone === zone)
    .map(
      (slot) =>
        new DatabaseRunner({
          slot,
          layout,
          syncQuorum: topology.cells.syncQuorum,
          bin,
          runAs,
          dataDir: dataDirOf(world, slot),
          template: pgTemplateDir(world),
          logFile: state.log(`db-${slot.id}`),
          cell: () => options.cell(slot.cell),
          onEvent: options.onEvent,
          onDatabaseEvent: (kind, message, data) => options.onDatabaseEvent(slot, kind, message, data),
          onUrgentReport: options.onUrgentReport,
        }),
    );
  const writers = layout.writers
    .filter((w) => w.zone === zone)
    .map((slot) => ({ slot, endpoint: new WriterEndpoint(slot) }));
  const secret = state.tokenSecret();
  const instances = layout.instances
    .filter((i) => i.zone === zone)
    .map(
      (slot) =>
        new InstanceRunner({
          slot,
          layout,
          version: "v1",
          tokenSecret: secret,
          ringfenceBin: options.ringfenceBin,
          cwd: dirname(world.topologyFile),
          logFile: state.log(`instance-${slot.id}`),
          onEvent: options.onEvent,
          onHealthChange: (health, detail) => options.onInstanceHealth?.(slot, health, detail),
        }),
    );
  return { databases, writers, instances };
}

/**
 * What the zone runs, as reported to the controller: each supervised process with its state and its
 * probe's health, and each writer endpoint (running inside the agent since `startedAt`).
 */
export function processReports(processes: ZoneProcesses, startedAt: string): ProcessReport[] {
  const supervised = (
    r: { supervised: Supervised; health: ProcessReport["health"]; detail: string },
    kind: "database" | "instance",
  ): ProcessReport => ({
    id: r.supervised.id,
    kind,
    state: r.supervised.state,
    pid: r.supervised.pid,
    restarts: r.supervised.restarts,
    health: r.health,
    detail: r.detail,
    since: r.supervised.since.toISOString(),
  });
  const dbs = processes.databases.map((d) => supervised(d, "database"));
  const instances = processes.instances.map((i) => supervised(i, "instance"));
  const writers = processes.writers.map(({ slot, endpoint }): ProcessReport => {
    const s = endpoint.stats();
    return {
      id: `writer:${slot.id}`,
      kind: "writer",
      state: "running",
      pid: process.pid,
      restarts: 0,
      health: s.fenced ? "degraded" : "healthy",
      detail: s.fenced
        ? "fenced: refusing connections"
        : `to ${s.target?.host}:${s.target?.port}, ${s.open} open`,
      since: startedAt,
    };
  });
  return [...dbs, ...writers, ...instances];
}
