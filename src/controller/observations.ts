/**
 * What the controller currently believes about agents, routers and the processes they report, given
 * the stored reports, the time now and the heartbeat timeout. An agent not heard from for longer than
 * the timeout is unreachable, and everything it reported is treated as unknown rather than trusted.
 */
import type { DatabaseReport, Health, ProcessReport, RouterReport } from "../world/contracts.js";
import type { AgentRecord, AgentReport, RouterRecord } from "./store.js";

export interface AgentView {
  readonly zone: string;
  readonly reachable: boolean;
  /** Milliseconds since the last heartbeat; null when the agent never reported. */
  readonly lastHeartbeatAgeMs: number | null;
  /** The last report, also when the agent is unreachable (for display only). */
  readonly report: AgentReport | undefined;
}

export interface RouterView {
  readonly region: string;
  readonly reachable: boolean;
  readonly lastHeartbeatAgeMs: number | null;
  readonly report: RouterReport | undefined;
}

export class Observations {
  readonly nowMs: number;
  readonly timeoutMs: number;
  readonly #agents: ReadonlyMap<string, AgentRecord>;
  readonly #routers: ReadonlyMap<string, RouterRecord>;
  readonly #processes = new Map<string, ProcessReport>();
  readonly #databases = new Map<string, DatabaseReport>();

  constructor(
    agents: readonly AgentRecord[],
    routers: readonly RouterRecord[],
    nowMs: number,
    timeoutMs: number,
  ) {
    this.nowMs = nowMs;
    this.timeoutMs = timeoutMs;
    this.#agents = new Map(agents.map((a) => [a.zone, a]));
    this.#routers = new Map(routers.map((r) => [r.region, r]));
    for (const agent of agents) {
      // Only a reachable agent's reports count: a silent agent's last word may be long outdated.
      if (!this.#fresh(agent.lastHeartbeatMs)) continue;
      for (const p of agent.report.processes) this.#processes.set(p.id, p);
      for (const d of agent.report.databases) {
        this.#databases.set(d.id, d);
        if (d.id.startsWith("database:")) this.#databases.set(d.id.slice("database:".length), d);
      }
    }
  }

  #fresh(lastMs: number): boolean {
    return this.nowMs - lastMs <= this.timeoutMs;
  }

  agent(zone: string): AgentView {
    const record = this.#agents.get(zone);
    if (!record) return { zone, reachable: false, lastHeartbeatAgeMs: null, report: undefined };
    return {
      zone,
      reachable: this.#fresh(record.lastHeartbeatMs),
      lastHeartbeatAgeMs: Math.max(0, this.nowMs - record.lastHeartbeatMs),
      report: record.report,
    };
  }

  router(region: string): RouterView {
    const record = this.#routers.get(region);
    if (!record) return { region, reachable: false, lastHeartbeatAgeMs: null, report: undefined };
    return {
      region,
      reachable: this.#fresh(record.lastHeartbeatMs),
      lastHeartbeatAgeMs: Math.max(0, this.nowMs - record.lastHeartbeatMs),
      report: record.report,
    };
  }

  /** A process as a reachable agent reported it (by process id, `instance:...`), or undefined. */
  process(id: string): ProcessReport | undefined {
    return this.#processes.get(id);
  }

  /** Health of a process: as reported by a reachable agent, `unknown` otherwise. */
  health(id: string): Health {
    return this.#processes.get(id)?.health ?? "unknown";
  }

  /** The replication report of a database (by slot id `cell-0/us-east`) from a reachable agent. */
  database(slot: string): DatabaseReport | undefined {
    return this.#databases.get(slot);
  }
}
