/**
 * Helpers for controller tests: tokens, a settable clock, and heartbeats that report every process
 * of a zone the way a healthy agent would.
 */
import type { Topology } from "../topology/model.js";
import type { AgentEvent, DatabaseReport, Heartbeat, ProcessReport } from "../world/contracts.js";
import type { Layout } from "../world/layout.js";

export const TEST_TOKENS = {
  reader: "reader-token-0001",
  agent: "agent-token-0002",
  operator: "operator-token-0003",
} as const;

/** A clock that moves only when told. */
export class ManualClock {
  nowMs: number;
  constructor(start = Date.parse("2030-01-01T00:00:00.000Z")) {
    this.nowMs = start;
  }
  readonly now = (): number => this.nowMs;
  advance(ms: number): void {
    this.nowMs += ms;
  }
}

/**
 * A heartbeat from `zone` with every process placed there running and healthy, and for every
 * database placed there a replication report: primaries (in their cell's home region) list every
 * other replica as a streaming quorum standby.
 */
export function healthyHeartbeat(
  topology: Topology,
  layout: Layout,
  zone: string,
  extra: {
    desiredVersion?: number;
    events?: AgentEvent[];
    change?: (p: ProcessReport) => ProcessReport;
  } = {},
): Heartbeat {
  const since = "2030-01-01T00:00:00.000Z";
  const change = extra.change ?? ((p) => p);
  const processes: ProcessReport[] = [];
  const report = (kind: ProcessReport["kind"], id: string, pid: number): ProcessReport =>
    change({
      id: `${kind}:${id}`,
      kind,
      state: "running",
      pid,
      restarts: 0,
      health: "healthy",
      detail: "",
      since,
    });
  let pid = 1000;
  for (const d of layout.databases) if (d.zone === zone) processes.push(report("database", d.id, pid++));
  for (const w of layout.writers) if (w.zone === zone) processes.push(report("writer", w.id, pid++));
  for (const i of layout.instances) if (i.zone === zone) processes.push(report("instance", i.id, pid++));
  const databases: DatabaseReport[] = layout.databases
    .filter((d) => d.zone === zone)
    .map((d) => {
      const home = topology.cells.list.find((c) => c.id === d.cell)?.home;
      const primary = d.region === home;
      return {
        id: d.id,
        role: primary ? "primary" : "standby",
        lsn: "0/3000060",
        synchronousStandbyNames: primary ? "ANY 1 (standbys)" : null,
        standbys: primary
          ? layout.databases
              .filter((s) => s.cell === d.cell && s.id !== d.id)
              .map((s) => ({
                applicationName: s.applicationName,
                state: "streaming",
                syncState: "quorum",
                lagBytes: 128,
                flushLagMs: 2,
                replayLagMs: 3,
              }))
          : [],
      };
    });
  return {
    zone,
    pid: 4242,
    startedAt: since,
    desiredVersion: extra.desiredVersion ?? 1,
    processes,
    databases,
    events: extra.events ?? [],
  };
}
