/**
 * The agent of one zone: runs what the controller places there (the zone's PostgreSQL instances,
 * writer endpoints and service instances), restarts what dies, probes health and replication, keeps
 * each database in the role the desired state gives it (promotion, repointing, rewind), probes the
 * cells' primaries in other regions (every half second for the default `failover.detection`, see
 * failover/settings.ts), and heartbeats to the controller every second, and at once when something
 * the controller waits for changed.
 *
 * Three loops: the desired state by long poll (applied as soon as the controller changes it), a 1 s
 * tick (probes, role reconciliation, heartbeat), and the observer's probes. When the
 * controller is unreachable the agent keeps running from its last-known desired state, persisted on
 * disk (static stability).
 */

import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { HEARTBEAT_INTERVAL_MS } from "../failover/settings.js";
import { httpRequest } from "../lib/http-request.js";
import type { Topology } from "../topology/model.js";
import type { AgentEvent, CellState, DesiredState, Heartbeat, ProcessReport } from "../world/contracts.js";
import { type Layout, reach, type WriterSlot } from "../world/layout.js";
import { dataDirOf, type StateDir, type WorldConfig } from "../world/state.js";
import { Coalescer } from "./coalescer.js";
import { DatabaseRunner } from "./database.js";
import { DesiredFeed } from "./desired-feed.js";
import type { InstanceRunner } from "./instance.js";
import { killOrphans, recordPids } from "./leftovers.js";
import { type ObserverTarget, PrimaryObserver } from "./observer.js";
import type { Supervised, SupervisorEvent } from "./supervisor.js";
import type { WriterEndpoint } from "./writer.js";
import { processReports, zoneProcesses } from "./zone-processes.js";

export interface AgentOptions {
  readonly zone: string;
  readonly state: StateDir;
  readonly world: WorldConfig;
  readonly topology: Topology;
  readonly layout: Layout;
  readonly controllerUrl: string;
  readonly agentToken: string;
  readonly ringfenceBin: string;
  /**
   * Probe, reconcile and heartbeat period. Default `HEARTBEAT_INTERVAL_MS` (1 s), the period the
   * detection settings assume when they judge how fresh a report is (failover/settings.ts).
   */
  readonly intervalMs?: number;
  /** How long the controller may hold a desired-state request open. Default 10 s. */
  readonly desiredWaitMs?: number;
  readonly log?: (line: string) => void;
}

const MAX_PENDING_EVENTS = 1_000;
/** How long a starting agent waits for the controller before it runs from its persisted state. */
const FIRST_FETCH_TIMEOUT_MS = 2_000;
/** How long an agent with no persisted desired state (a new world) asks a refusing controller. */
const NEW_AGENT_FETCH_TIMEOUT_MS = 30_000;
/** Tick period while a cell of this zone's databases is fenced or switching over. */
const FENCED_TICK_MS = 200;

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
  /** The newest desired version applied before the last completed probes of the databases began. */
  #probedVersion = 0;
  /** When the next tick is due; undefined while one runs. */
  #nextTickAt: number | undefined;
  #loop: Promise<void> = Promise.resolve();
  #feed: DesiredFeed;
  // At most 10 heartbeats a second, but one the controller waits on (a desired state applied and
  // probed, a promotion) leaves 10 ms after the last.
  #beats = new Coalescer(() => this.#heartbeat(), { minIntervalMs: 100, urgentIntervalMs: 10 });
  #observer: PrimaryObserver;

  constructor(options: AgentOptions) {
    this.zone = options.zone;
    this.#options = options;
    this.#feed = new DesiredFeed({
      controllerUrl: options.controllerUrl,
      agentToken: options.agentToken,
      zone: options.zone,
      ...(options.desiredWaitMs === undefined ? {} : { waitMs: options.desiredWaitMs }),
      pauseMs: options.intervalMs ?? HEARTBEAT_INTERVAL_MS,
      held: () => this.#desired?.version,
      onAnswer: (desired, changed) => this.#onDesired(desired, changed),
      onFailure: (err) => this.#onDesiredFailure(err),
    });
    // The probe timing is what the topology's failover.detection compiled to (failover/settings.ts).
    const { probeIntervalMs, probeTimeoutMs } = options.topology.failover.detection;
    this.#observer = new PrimaryObserver({
      targets: () => this.#observerTargets(),
      intervalMs: probeIntervalMs,
      connectTimeoutMs: probeTimeoutMs,
      queryTimeoutMs: probeTimeoutMs,
      onChange: () => this.#beats.request(),
    });
  }

  /** The primaries of every cell whose primary is in another region than this zone's. */
  #observerTargets(): ObserverTarget[] {
    const { layout } = this.#options;
    const region = layout.zones.find((z) => z.id === this.zone)?.region;
    if (!region) return [];
    const targets: ObserverTarget[] = [];
    for (const cell of this.#cells.values()) {
      if (cell.primary === region) continue;
      const slot = layout.databases.find((d) => d.cell === cell.cell && d.region === cell.primary);
      if (slot) targets.push({ id: slot.id, endpoint: reach(layout, region, slot.region, slot) });
    }
    return targets;
  }

  get #desiredFile(): string {
    return this.#options.state.desiredFile(this.zone);
  }

  /** Starts everything placed in this zone, once a desired state is known. */
  /**
   * The desired state, asked again every 100 ms while the controller refuses connections (it is
   * starting too, as in a new world): for at most `FIRST_FETCH_TIMEOUT_MS` in all when a persisted
   * desired state can stand in, and up to `NEW_AGENT_FETCH_TIMEOUT_MS` when there is none.
   */
  async #firstFetch(): Promise<DesiredState> {
    const limit = existsSync(this.#desiredFile) ? FIRST_FETCH_TIMEOUT_MS : NEW_AGENT_FETCH_TIMEOUT_MS;
    const deadline = Date.now() + limit;
    for (;;) {
      try {
        return await this.#feed.fetch(undefined, Math.max(1, deadline - Date.now()));
      } catch (err) {
        if (Date.now() + 100 >= deadline || !isConnectionRefused(err)) throw err;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }

  async start(): Promise<void> {
    const { layout, state, world, topology, ringfenceBin } = this.#options;
    mkdirSync(state.agentDir(this.zone), { recursive: true });
    const zone = zoneProcesses({
      zone: this.zone,
      state,
      world,
      topology,
      layout,
      ringfenceBin,
      cell: (cell) => this.#cells.get(cell),
      onEvent: (e: SupervisorEvent) => {
        this.#event(`process.${e.kind}`, e.id, e.message, e.data);
        if (e.kind === "exited") void this.#reportExit(e.id);
      },
      onDatabaseEvent: (slot, kind, message, data) => this.#event(kind, `database:${slot.id}`, message, data),
      onUrgentReport: () => this.#beats.request(true),
      // Logged (what a failed start points at when an instance runs but fails its health check).
      onInstanceHealth: (slot, health, detail) => {
        this.#log(`instance:${slot.id}: ${health}: ${detail}`);
        // An instance that starts serving is news for the routers: report it now, not next tick.
        if (health === "healthy") this.#beats.request(true);
      },
    });
    this.#databases = zone.databases;
    this.#writers = zone.writers;
    this.#instances = zone.instances;
    this.#cleanUpOrphans();
    for (const w of this.#writers) await w.endpoint.start();
    this.#running = true;
    // A fresh desired state first: the persisted one may be stale (the cell failed over while this
    // zone was down) and would start an old primary as a primary until the controller answered.
    // Static stability: when the controller does not answer soon, run from the persisted one.
    try {
      this.#apply(await this.#firstFetch(), true);
      this.#controllerReachable = true;
    } catch {
      if (existsSync(this.#desiredFile)) {
        try {
          this.#apply(JSON.parse(readFileSync(this.#desiredFile, "utf8")) as DesiredState, false);
        } catch {
          // a torn file: wait for the controller
        }
      }
    }
    this.#schedule(0);
    this.#feed.start();
    this.#observer.start();
  }

  /**
   * Kills what a previous run of this agent left behind (it was SIGKILLed: its children live on,
   * holding ports and data directories), so that the new run starts from a clean slate.
   */
  #cleanUpOrphans(): void {
    const dataDirs = this.#databases.map((db) => dataDirOf(this.#options.world, db.slot));
    killOrphans(this.#pidsFile, dataDirs, (pid) =>
      this.#event("agent.orphan-killed", `pid:${pid}`, `killed pid ${pid} left behind by a previous run`, {}),
    );
  }

  #recordPids(): void {
    const pids = [...this.#instances.map((i) => i.supervised.pid)].filter((p): p is number => p !== null);
    recordPids(this.#pidsFile, pids);
  }

  get #pidsFile(): string {
    return join(this.#options.state.agentDir(this.zone), "pids.json");
  }

  #schedule(delayMs: number): void {
    if (!this.#running) return;
    this.#nextTickAt = Date.now() + delayMs;
    this.#timer = setTimeout(() => {
      this.#nextTickAt = undefined;
      this.#loop = this.#tick().finally(() => this.#schedule(this.#tickMs()));
    }, delayMs);
  }

  /** Brings the next tick forward when the period just got shorter (a cell was fenced). */
  #hurryTick(): void {
    if (this.#nextTickAt === undefined) return; // a tick is running; the next is scheduled after it
    const delayMs = this.#tickMs();
    if (this.#nextTickAt - Date.now() <= delayMs) return;
    if (this.#timer) clearTimeout(this.#timer);
    this.#schedule(delayMs);
  }

  /**
   * The tick period: faster while a cell of this zone's databases is fenced or switching over, since
   * the controller is then waiting on their positions (a switchover waits for its target to catch
   * up), streams (for its other standbys to stream from the target) or roles.
   */
  #tickMs(): number {
    const interval = this.#options.intervalMs ?? HEARTBEAT_INTERVAL_MS;
    const fenced = this.#databases.some((d) => {
      const cell = this.#cells.get(d.slot.cell);
      return cell?.fenced === true || cell?.switchingTo !== undefined;
    });
    return fenced ? Math.min(interval, FENCED_TICK_MS) : interval;
  }

  async #tick(): Promise<void> {
    const version = this.#desired?.version ?? 0;
    await Promise.all([...this.#databases.map((d) => d.probe()), ...this.#instances.map((i) => i.probe())]);
    this.#probedVersion = Math.max(this.#probedVersion, version);
    // A role change (a rewind, a 5 s wait for streaming) must not hold up the tick.
    for (const d of this.#databases) void d.reconcile();
    this.#recordPids();
    this.#beats.request();
  }

  /** An answer of the desired-state feed: applied at once; a change reconciled and reported at once. */
  #onDesired(desired: DesiredState, changed: boolean): void {
    if (!this.#running) return;
    if (!this.#controllerReachable) this.#log("controller reachable");
    this.#controllerReachable = true;
    this.#apply(desired, true);
    if (!changed) return;
    for (const d of this.#databases) void d.reconcile();
    void this.#reportChange(desired.version);
    this.#hurryTick();
  }

  #onDesiredFailure(err: Error): void {
    if (this.#controllerReachable || this.#desired === undefined) {
      this.#log(`controller unreachable (${err.message}); running from the last-known desired state`);
    }
    this.#controllerReachable = false;
  }

  /**
   * Heartbeats as soon as the databases have been probed after `version` was applied: the
   * controller reads positions from it (a fenced primary's last flush, a standby catching up).
   */
  async #reportChange(version: number): Promise<void> {
    await Promise.all(this.#databases.map((d) => d.probe()));
    this.#probedVersion = Math.max(this.#probedVersion, version);
    this.#beats.request(true);
  }

  /**
   * A process that died is down now: its health (and that of the service instances reading from it,
   * when it is a database) is reported at once rather than at the next tick,
   * so that routers stop sending requests to it before they count enough failures to eject it (and
   * keep it out for the ejection time although it is back a moment later).
   */
  async #reportExit(id: string): Promise<void> {
    const runner = [...this.#instances, ...this.#databases].find((r) => r.supervised.id === id);
    if (!runner) return;
    // A service instance reads from its cell's local replica: when that dies, so does its health.
    const dependents =
      runner instanceof DatabaseRunner
        ? this.#instances.filter(
            (i) => i.slot.cell === runner.slot.cell && i.slot.region === runner.slot.region,
          )
        : [];
    await Promise.all([runner.probe(), ...dependents.map((i) => i.probe())]);
    this.#beats.request();
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
    for (const d of this.#databases) d.start(); // not while a role change has it stopped on purpose
    for (const i of this.#instances) i.supervised.start();
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
    const sentMonoMs = performance.now();
    const body: Heartbeat = {
      zone: this.zone,
      pid: process.pid,
      startedAt: this.#startedAt,
      // The version the database reports below were probed under, so that a report the controller
      // reads for version V was taken after the agent applied V (fenced its writers, say).
      desiredVersion: this.#probedVersion,
      processes: this.processes(),
      databases: this.#databases.map((d) => d.report),
      events,
      sentMonoMs,
      observations: this.#observer.observations(sentMonoMs),
    };
    try {
      const res = await httpRequest(`${controllerUrl}/v1/agents/${encodeURIComponent(this.zone)}/heartbeat`, {
        method: "POST",
        headers: { authorization: `Bearer ${agentToken}`, "content-type": "application/json" },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(2_000),
      });
      await res.drain();
      if (res.ok) this.#events.splice(0, events.length);
    } catch {
      // the events stay queued for the next heartbeat
    }
  }

  /** What this agent runs, as reported to the controller. */
  processes(): ProcessReport[] {
    const zone = { databases: this.#databases, writers: this.#writers, instances: this.#instances };
    return processReports(zone, this.#startedAt);
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
    await this.#feed.stop();
    await this.#loop.catch(() => {});
    await this.#observer.stop();
    this.#beats.close();
    await this.#beats.idle();
    await Promise.all(this.#instances.map((i) => i.stop()));
    await Promise.all(this.#writers.map((w) => w.endpoint.close()));
    await Promise.all(this.#databases.map((d) => d.stop()));
    await this.#heartbeat();
  }
}

/** Whether `err` is a refused connection: nothing listens there (yet). */
function isConnectionRefused(err: unknown): boolean {
  return (err as { code?: unknown }).code === "ECONNREFUSED";
}
