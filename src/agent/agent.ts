/**
 * The agent of one zone: runs what the controller places there (the zone's PostgreSQL instances,
 * writer endpoints and service instances), restarts what dies, probes health and replication, and
 * heartbeats to the controller every second. When the controller is unreachable it keeps running
 * from its last-known desired state, persisted on disk (static stability).
 */
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { findPgBinaries, pgRunAs } from "../lib/postgres.js";
import { processTree } from "../lib/proctree.js";
import type { Topology } from "../topology/model.js";
import type { AgentEvent, CellState, DesiredState, Heartbeat, ProcessReport } from "../world/contracts.js";
import { type Layout, reach, type WriterSlot } from "../world/layout.js";
import type { StateDir, WorldConfig } from "../world/state.js";
import { DatabaseRunner } from "./database.js";
import { InstanceRunner } from "./instance.js";
import type { Supervised, SupervisorEvent } from "./supervisor.js";
import { WriterEndpoint } from "./writer.js";

export interface AgentOptions {
  readonly zone: string;
  readonly state: StateDir;
  readonly world: WorldConfig;
  readonly topology: Topology;
  readonly layout: Layout;
  readonly controllerUrl: string;
  readonly agentToken: string;
  readonly ringfenceBin: string;
  /** Reconcile, probe and heartbeat period. Default 1 s. */
  readonly intervalMs?: number;
  readonly log?: (line: string) => void;
}

const MAX_PENDING_EVENTS = 1_000;

export class Agent {
  readonly zone: string;
  #options: AgentOptions;
  #desired: DesiredState | undefined;
  #cells = new Map<string, CellState>();
  #databases: DatabaseRunner[] = [];
  #writers: { slot: WriterSlot; endpoint: WriterEndpoint }[] = [];
  #instances: InstanceRunner[] = [];
  #events: AgentEvent[] = [];
  #seenRestarts = new Map<string, number>();
  #timer: NodeJS.Timeout | undefined;
  #running = false;
  #startedAt = new Date().toISOString();
  #controllerReachable = false;
  #loop: Promise<void> = Promise.resolve();

  constructor(options: AgentOptions) {
    this.zone = options.zone;
    this.#options = options;
  }

  get #desiredFile(): string {
    return join(this.#options.state.agentDir(this.zone), "desired.json");
  }

  /** Starts everything placed in this zone, once a desired state is known. */
  async start(): Promise<void> {
    const { layout, state, world, topology } = this.#options;
    mkdirSync(state.agentDir(this.zone), { recursive: true });
    const bin = findPgBinaries();
    const runAs = pgRunAs();
    const onEvent = (e: SupervisorEvent) => this.#event(`process.${e.kind}`, e.id, e.message, e.data);
    const cellState = (cell: string) => () => this.#cells.get(cell);
    this.#databases = layout.databases
      .filter((d) => d.zone === this.zone)
      .map(
        (slot) =>
          new DatabaseRunner({
            slot,
            layout,
            syncQuorum: topology.cells.syncQuorum,
            bin,
            runAs,
            dataDir: join(world.pgRoot, slot.id.replace(/\//g, "-")),
            logFile: state.log(`db-${slot.id}`),
            cell: cellState(slot.cell),
            onEvent,
          }),
      );
    this.#writers = layout.writers
      .filter((w) => w.zone === this.zone)
      .map((slot) => ({ slot, endpoint: new WriterEndpoint(slot) }));
    const secret = state.tokenSecret();
    this.#instances = layout.instances
      .filter((i) => i.zone === this.zone)
      .map(
        (slot) =>
          new InstanceRunner({
            slot,
            layout,
            version: "v1",
            tokenSecret: secret,
            ringfenceBin: this.#options.ringfenceBin,
            cwd: dirname(world.topologyFile),
            logFile: state.log(`instance-${slot.id}`),
            onEvent,
          }),
      );
    this.#cleanUpOrphans();
    for (const w of this.#writers) await w.endpoint.start();
    this.#running = true;
    // Static stability: start from the last-known desired state while the controller answers.
    if (existsSync(this.#desiredFile)) {
      try {
        this.#apply(JSON.parse(readFileSync(this.#desiredFile, "utf8")) as DesiredState, false);
      } catch {
        // a torn file: wait for the controller
      }
    }
    this.#schedule(0);
  }

  /**
   * Kills what a previous run of this agent left behind (it was SIGKILLed: its children live on,
   * holding ports and data directories), so that the new run starts from a clean slate.
   */
  #cleanUpOrphans(): void {
    const pidsFile = join(this.#options.state.agentDir(this.zone), "pids.json");
    const pids: number[] = [];
    if (existsSync(pidsFile)) {
      try {
        pids.push(...(JSON.parse(readFileSync(pidsFile, "utf8")) as number[]));
      } catch {
        // ignore a torn file
      }
    }
    for (const db of this.#databases) {
      const lock = join(this.#options.world.pgRoot, db.slot.id.replace(/\//g, "-"), "postmaster.pid");
      try {
        const pid = Number(readFileSync(lock, "utf8").split("\n")[0]);
        if (pid > 0) pids.push(pid);
      } catch {
        // no lock file, or not readable: nothing left behind
      }
    }
    for (const pid of pids) {
      if (!alive(pid)) continue;
      const tree = processTree(pid);
      for (const p of tree) {
        try {
          process.kill(p, "SIGCONT");
          process.kill(p, "SIGKILL");
        } catch {
          // gone
        }
      }
      this.#event("agent.orphan-killed", `pid:${pid}`, `killed pid ${pid} left behind by a previous run`, {});
    }
  }

  #recordPids(): void {
    const pids = [...this.#instances.map((i) => i.supervised.pid)].filter((p): p is number => p !== null);
    try {
      writeFileSync(join(this.#options.state.agentDir(this.zone), "pids.json"), JSON.stringify(pids));
    } catch {
      // best effort
    }
  }

  #schedule(delayMs: number): void {
    if (!this.#running) return;
    this.#timer = setTimeout(() => {
      this.#loop = this.#tick().finally(() => this.#schedule(this.#options.intervalMs ?? 1_000));
    }, delayMs);
  }

  async #tick(): Promise<void> {
    await this.#fetchDesired();
    await Promise.all([...this.#databases.map((d) => d.probe()), ...this.#instances.map((i) => i.probe())]);
    this.#recordPids();
    await this.#heartbeat();
  }

  async #fetchDesired(): Promise<void> {
    const { controllerUrl, agentToken } = this.#options;
    try {
      const res = await fetch(`${controllerUrl}/v1/agents/${encodeURIComponent(this.zone)}/desired`, {
        headers: { authorization: `Bearer ${agentToken}` },
        signal: AbortSignal.timeout(2_000),
      });
      if (!res.ok) throw new Error(`controller answered ${res.status}`);
      const desired = (await res.json()) as DesiredState;
      if (!this.#controllerReachable) this.#log("controller reachable");
      this.#controllerReachable = true;
      this.#apply(desired, true);
    } catch (err) {
      if (this.#controllerReachable || this.#desired === undefined) {
        this.#log(
          `controller unreachable (${(err as Error).message}); running from the last-known desired state`,
        );
      }
      this.#controllerReachable = false;
    }
  }

  #apply(desired: DesiredState, persist: boolean): void {
    const changed = this.#desired?.version !== desired.version;
    this.#desired = desired;
    this.#cells = new Map(desired.cells.map((c) => [c.cell, c]));
    if (changed && persist) {
      const tmp = `${this.#desiredFile}.tmp`;
      writeFileSync(tmp, JSON.stringify(desired));
      renameSync(tmp, this.#desiredFile); // atomic: a crash leaves the old state or the new one
    }
    this.#reconcile();
  }

  #reconcile(): void {
    const { layout } = this.#options;
    for (const { slot, endpoint } of this.#writers) {
      const cell = this.#cells.get(slot.cell);
      const primary = cell
        ? layout.databases.find((d) => d.cell === cell.cell && d.region === cell.primary)
        : undefined;
      if (!cell || !primary) endpoint.route(null, true);
      else endpoint.route(reach(layout, slot.region, primary.region, primary), cell.fenced);
    }
    const runners: { id: string; supervised: Supervised }[] = [
      ...this.#databases.map((d) => ({ id: d.supervised.id, supervised: d.supervised })),
      ...this.#instances.map((i) => ({ id: i.supervised.id, supervised: i.supervised })),
    ];
    for (const r of runners) r.supervised.start();
    for (const [id, nonce] of Object.entries(this.#desired?.restarts ?? {})) {
      const seen = this.#seenRestarts.get(id);
      this.#seenRestarts.set(id, nonce);
      if (seen === undefined || seen === nonce) continue;
      const runner = runners.find((r) => r.id === id);
      if (runner) {
        this.#event("process.restart-requested", id, "restarting on the operator's request", { nonce });
        void runner.supervised.restart();
      }
    }
  }

  async #heartbeat(): Promise<void> {
    const { controllerUrl, agentToken } = this.#options;
    const events = this.#events.slice(0, 200);
    const body: Heartbeat = {
      zone: this.zone,
      pid: process.pid,
      startedAt: this.#startedAt,
      desiredVersion: this.#desired?.version ?? 0,
      processes: this.processes(),
      databases: this.#databases.map((d) => d.report),
      events,
    };
    try {
      const res = await fetch(`${controllerUrl}/v1/agents/${encodeURIComponent(this.zone)}/heartbeat`, {
        method: "POST",
        headers: { authorization: `Bearer ${agentToken}`, "content-type": "application/json" },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(2_000),
      });
      await res.arrayBuffer();
      if (res.ok) this.#events.splice(0, events.length);
    } catch {
      // the events stay queued for the next heartbeat
    }
  }

  /** What this agent runs, as reported to the controller. */
  processes(): ProcessReport[] {
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
    const dbs = this.#databases.map((d) => supervised(d, "database"));
    const instances = this.#instances.map((i) => supervised(i, "instance"));
    const writers = this.#writers.map(({ slot, endpoint }): ProcessReport => {
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
        since: this.#startedAt,
      };
    });
    return [...dbs, ...writers, ...instances];
  }

  #event(kind: string, subject: string, message: string, data: Record<string, unknown>): void {
    this.#events.push({ at: new Date().toISOString(), kind, subject, message, data });
    if (this.#events.length > MAX_PENDING_EVENTS)
      this.#events.splice(0, this.#events.length - MAX_PENDING_EVENTS);
    this.#log(`${subject}: ${message}`);
  }

  #log(line: string): void {
    this.#options.log?.(`[agent ${this.zone}] ${line}`);
  }

  /** Stops instances first, then writer endpoints, then databases (fast shutdown). */
  async stop(): Promise<void> {
    this.#running = false;
    if (this.#timer) clearTimeout(this.#timer);
    await this.#loop.catch(() => {});
    await Promise.all(this.#instances.map((i) => i.stop()));
    await Promise.all(this.#writers.map((w) => w.endpoint.close()));
    await Promise.all(this.#databases.map((d) => d.stop()));
    await this.#heartbeat();
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
