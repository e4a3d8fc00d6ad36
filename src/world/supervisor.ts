/**
 * The supervisor of a local world (`ringfence up`): starts the control database, the controller,
 * the WAN emulator, one agent per zone and one router per region, in that order, restarts any that
 * die, waits until every region's router reaches every cell, and stops everything in reverse order.
 * A start that fails, or that `stop()` interrupts, stops everything it had started before it
 * rejects; a failure names the log lines that say why (start-logs.ts).
 * The WAN emulator runs inside this process; everything else is a child process with its own log.
 * Each child is recorded in `processes.json` and carries the world's mark in its environment, so
 * that `ringfence down` can still find and stop them all should this process die (see orphans.ts).
 */

import { spawn } from "node:child_process";
import { closeSync, copyFileSync, existsSync, openSync, rmSync } from "node:fs";
import { join } from "node:path";
import { Supervised, type SupervisorEvent } from "../agent/supervisor.js";
import { RingfenceError } from "../lib/errors.js";
import { httpRequest } from "../lib/http-request.js";
import { CHILD_NODE_FLAGS, ROUTER_NODE_FLAGS, withExtraNodeFlags } from "../lib/node-flags.js";
import {
  baseSettings,
  describeRunAs,
  findPgBinaries,
  initPrimary,
  makeTemplate,
  pgRunAs,
  signalGroup,
  spawnPostgres,
  waitReady,
  writeSettings,
} from "../lib/postgres.js";
import { processTree } from "../lib/proctree.js";
import { writeCompiledTopology } from "../topology/compiled.js";
import { loadTopology, resolveTopologyPath } from "../topology/load.js";
import type { Topology } from "../topology/model.js";
import { WanEmulator } from "../wan/index.js";
import { buildLayout, type Layout, wanForwards } from "./layout.js";
import {
  assertNoOrphans,
  describeProcesses,
  findWorldProcesses,
  stopOrphans,
  WORLD_MARK,
} from "./orphans.js";
import { ProcessRecord, runningSupervisor } from "./pid-files.js";
import { killQuietly, reniceQuietly, signalQuietly } from "./procfs.js";
import { until, waitUntilServing } from "./readiness.js";
import { seedCells } from "./seed.js";
import { explainUnserved, type LogMarks, logMarks, logProblems } from "./start-logs.js";
import { dataDirOf, pgTemplateDir, StateDir, type WorldConfig } from "./state.js";

// Where it lived before readiness.ts; tests and drills import it from here.
export { probeTenants } from "./readiness.js";

export interface WorldOptions {
  readonly stateDir: string;
  /** Topology file or bundled name for a new world; an existing world keeps its own. */
  readonly topology?: string;
  readonly addressBase?: number;
  /** Absolute path of the ringfence CLI script, used to start the other roles. */
  readonly ringfenceBin: string;
  /** How long to wait for every router to serve every cell (`up --ready-timeout`). Default 120 s. */
  readonly readyTimeoutMs?: number;
  readonly progress?: (line: string) => void;
}

export interface WorldSummary {
  readonly stateDir: string;
  readonly topology: string;
  readonly controller: string;
  readonly routers: readonly { region: string; url: string }[];
  readonly tokensFile: string;
  readonly startedInMs: number;
}

export class World {
  readonly state: StateDir;
  #options: WorldOptions;
  #config: WorldConfig | undefined;
  #topology: Topology | undefined;
  #layout: Layout | undefined;
  #controlDb: Supervised | undefined;
  #controller: Supervised | undefined;
  #agents: Supervised[] = [];
  #routers: Supervised[] = [];
  #wan: WanEmulator | undefined;
  /** Agents and routers started at `LOADING_NICENESS` while the controller starts (see `#startSteps`). */
  #loadingBehindController: Set<number> | undefined;
  #record: ProcessRecord | undefined;
  #started = 0;
  /** Log sizes when the start began: later lines are this start's. */
  #marks: LogMarks = new Map();
  /** Aborted by `stop()`, so that a start under way gives up at once and starts nothing more. */
  #abort = new AbortController();
  /** The start's steps, which `stop()` waits to settle before it resolves. */
  #steps: Promise<void> | undefined;
  #stopping: Promise<void> | undefined;
  /** What pauseRegion/pauseProcess stopped, by what was paused: resumed before anything stops. */
  #paused = new Map<string, number[]>();

  constructor(options: WorldOptions) {
    this.#options = options;
    this.state = new StateDir(options.stateDir);
  }

  get layout(): Layout {
    if (!this.#layout) throw new Error("the world is not started");
    return this.#layout;
  }
  get topology(): Topology {
    if (!this.#topology) throw new Error("the world is not started");
    return this.#topology;
  }

  #progress(line: string): void {
    const seconds = ((Date.now() - this.#started) / 1000).toFixed(1).padStart(5);
    this.#options.progress?.(`[${seconds}s] ${line}`);
  }

  /**
   * Starts the world and resolves once every router serves every cell. When it cannot, or `stop()`
   * is called meanwhile, it stops whatever it had started and then rejects
   * (`RINGFENCE_WORLD_START_FAILED`, `RINGFENCE_WORLD_START_INTERRUPTED`, or the step's own error).
   */
  async start(): Promise<WorldSummary> {
    this.#started = Date.now();
    this.#abort = new AbortController();
    this.#stopping = undefined;
    const running = runningSupervisor(this.state);
    if (running !== undefined && running !== process.pid) {
      throw new RingfenceError(
        "RINGFENCE_WORLD_RUNNING",
        `a world is already running from ${this.state.root} (supervisor pid ${running}); stop it with \`ringfence down\``,
      );
    }
    assertNoOrphans(this.state);
    this.#marks = logMarks(this.state.logs);
    this.#config = this.#prepareState();
    this.#topology = loadTopology(this.#config.topologyFile);
    writeCompiledTopology(this.state.compiledTopologyFile, this.#topology);
    this.#layout = buildLayout(this.#topology, this.#config.addressBase);
    this.#record = new ProcessRecord(this.state);
    this.#record.claim();
    this.#progress(`state in ${this.state.root} (topology ${this.#topology.name})`);
    this.#steps = this.#startSteps();
    try {
      await this.#steps;
    } catch (err) {
      await this.stop();
      throw err;
    }
    return this.summary();
  }

  async #startSteps(): Promise<void> {
    const config = this.#config as WorldConfig;
    const newWorld = !existsSync(join(config.pgRoot, "control", "PG_VERSION"));
    // A desired state kept from a control database that is gone names a world that is gone too.
    if (newWorld)
      for (const zone of this.layout.zones) rmSync(this.state.desiredFile(zone.id), { force: true });
    // The template every new cluster is copied from (one initdb), then the control database and,
    // in a new world, the cells' databases (seed.ts). Then the controller starts, and the agents
    // and routers load meanwhile on the other core and wait for it themselves: an agent has
    // nothing to start before the controller answers. docs/benchmarks.md, "The local world".
    await makeTemplate(findPgBinaries(), pgTemplateDir(config), pgRunAs());
    this.#abort.signal.throwIfAborted();
    await Promise.all([
      this.#startControlDatabase(),
      newWorld ? this.#seedCells() : undefined,
      this.#startWan(),
    ]);
    this.#abort.signal.throwIfAborted();
    // The controller is what everything waits for: as root (allowed to lower a niceness again),
    // the agents and routers load at LOADING_NICENESS until it answers, so that it gets a core.
    this.#loadingBehindController = process.getuid?.() === 0 ? new Set() : undefined;
    const controller = this.#startController().finally(() => {
      for (const pid of this.#loadingBehindController ?? []) reniceQuietly(pid, 0);
      this.#loadingBehindController = undefined;
    });
    controller.catch(() => {}); // awaited below; meanwhile a failure must not count as unhandled
    this.#startAgents();
    this.#startRouters();
    await controller;
    this.#abort.signal.throwIfAborted();
    await this.#waitUntilServing();
  }

  /** The pid of a role this supervisor runs: `controller`, `agent:ZONE` or `router:REGION`. */
  pid(role: string): number | null {
    const all = [this.#controller, ...this.#agents, ...this.#routers];
    return all.find((s) => s?.id === role)?.pid ?? null;
  }

  /**
   * A region outage: SIGKILLs every agent of `region` with all its children (PostgreSQL, writer
   * endpoints, service instances) and the region's router, and keeps them down until
   * {@link restoreRegion}. Resolves with the pids killed.
   */
  async killRegion(region: string): Promise<number[]> {
    return await this.#kill(this.#regionRoles(region), `region ${region}`);
  }

  /** A zone outage: SIGKILLs the zone's agent with every child, held down until {@link restoreZone}. */
  async killZone(zone: string): Promise<number[]> {
    return await this.#kill(this.#zoneRoles(zone), `zone ${zone}`);
  }

  /** Brings a killed zone's agent back. */
  restoreZone(zone: string): void {
    for (const s of this.#zoneRoles(zone)) s.start();
    this.#progress(`zone ${zone} restored`);
  }

  #zoneRoles(zone: string): Supervised[] {
    const held = this.#agents.filter((a) => a.id === `agent:${zone}`);
    if (held.length === 0) throw new Error(`unknown zone ${zone}`);
    return held;
  }

  async #kill(held: Supervised[], what: string): Promise<number[]> {
    // Trees read first: once a parent is gone its children are re-parented and lost from view.
    const pids = held.flatMap((s) => (s.pid === null ? [] : processTree(s.pid)));
    // kill() stops the supervisor from restarting them before any of them dies.
    const killed = held.map((s) => s.kill());
    for (const pid of pids) killQuietly(pid);
    await Promise.all(killed);
    this.#progress(`${what} killed (${pids.length} processes), held down`);
    return pids;
  }

  /** Brings a killed region back: its agents (which clean up and restart what they run) and router. */
  restoreRegion(region: string): void {
    for (const s of this.#regionRoles(region)) s.start();
    this.#progress(`region ${region} restored`);
  }

  /**
   * A region that hangs without dying (a frozen host, a paused VM): SIGSTOPs every agent of `region`
   * with all its children (PostgreSQL, service instances) and the region's router, parents first so
   * that none notices a child stop, until {@link resumeRegion}. Returns the pids stopped.
   */
  pauseRegion(region: string): number[] {
    const pids = this.#regionRoles(region).flatMap((s) => (s.pid === null ? [] : processTree(s.pid)));
    return this.#pause(`region ${region}`, pids);
  }

  /** Resumes a region paused by {@link pauseRegion}, children first. */
  resumeRegion(region: string): void {
    this.#resume(`region ${region}`);
  }

  /**
   * SIGSTOPs one role's process alone (`controller`, `agent:ZONE`, `router:REGION`; not its children:
   * a paused agent's databases keep running) until {@link resumeProcess}. Returns the pids stopped.
   */
  pauseProcess(role: string): number[] {
    const pid = this.pid(role);
    if (pid === null) throw new Error(`no running process for ${role}`);
    return this.#pause(role, [pid]);
  }

  /** Resumes a process paused by {@link pauseProcess}. */
  resumeProcess(role: string): void {
    this.#resume(role);
  }

  #pause(what: string, pids: number[]): number[] {
    if (this.#paused.has(what)) throw new Error(`${what} is paused already`);
    // Recorded before any signal: stop() resumes them even if this throws half-way.
    this.#paused.set(what, pids);
    for (const pid of pids) signalQuietly(pid, "SIGSTOP");
    this.#progress(`${what} paused (${pids.length} processes)`);
    return pids;
  }

  #resume(what: string): void {
    const pids = this.#paused.get(what);
    if (pids === undefined) return;
    for (const pid of [...pids].reverse()) signalQuietly(pid, "SIGCONT");
    this.#paused.delete(what);
    this.#progress(`${what} resumed`);
  }

  #regionRoles(region: string): Supervised[] {
    if (!this.layout.regions.some((r) => r.name === region)) throw new Error(`unknown region ${region}`);
    return [
      ...this.#agents.filter((a) => a.id.startsWith(`agent:${region}/`)),
      ...this.#routers.filter((r) => r.id === `router:${region}`),
    ];
  }

  /** The WAN emulator, for partitions and latency changes in tests and drills. */
  get wan(): WanEmulator {
    if (!this.#wan) throw new Error("the world is not started");
    return this.#wan;
  }

  summary(): WorldSummary {
    const layout = this.layout;
    return {
      stateDir: this.state.root,
      topology: this.#config?.topologySource ?? "",
      controller: `http://${layout.controller.host}:${layout.controller.port}`,
      routers: layout.regions.map((r) => ({
        region: r.name,
        url: `http://${r.router.host}:${r.router.port}`,
      })),
      tokensFile: this.state.tokensFile,
      startedInMs: Date.now() - this.#started,
    };
  }

  #prepareState(): WorldConfig {
    if (this.state.exists()) {
      const config = this.state.readConfig();
      if (this.#options.topology !== undefined) {
        this.#options.progress?.(
          `resuming the world in ${this.state.root}; it keeps its own topology (${config.topologySource})`,
        );
      }
      return config;
    }
    const { path, source } = resolveTopologyPath(this.#options.topology);
    loadTopology(path); // validate before creating anything
    const state = this.state;
    const copy = join(state.root, "topology.yaml");
    const config = state.initialise({
      topologyFile: copy,
      topologySource: source,
      addressBase: this.#options.addressBase ?? 0,
    });
    copyFileSync(path, copy);
    return config;
  }

  #supervise(id: string, argv: string[], log: string, nodeFlags = CHILD_NODE_FLAGS): Supervised {
    const logFile = this.state.log(log);
    return new Supervised({
      id,
      spawn: () => {
        const fd = openSync(logFile, "a");
        try {
          const child = spawn(
            process.execPath,
            [...withExtraNodeFlags(nodeFlags), this.#options.ringfenceBin, ...argv],
            {
              stdio: ["ignore", fd, fd],
              // The mark passes on to what the child starts, so that `down` finds it all after a crash.
              env: { ...process.env, RINGFENCE_ROLE: id, [WORLD_MARK]: this.state.root },
            },
          );
          if (id !== "controller" && this.#loadingBehindController && child.pid !== undefined) {
            this.#loadingBehindController.add(child.pid);
            reniceQuietly(child.pid, LOADING_NICENESS);
          }
          return child;
        } finally {
          // The child has its own copy; ours would leak one descriptor per (re)start.
          closeSync(fd);
        }
      },
      stopGraceMs: 45_000,
      onEvent: (e: SupervisorEvent) => {
        this.#recordStart(e);
        if (e.kind !== "started") this.#progress(`${id}: ${e.message}`);
      },
    });
  }

  /** Writes a process just (re)started to `processes.json`. */
  #recordStart(e: SupervisorEvent): void {
    if (e.kind === "started" && typeof e.data.pid === "number") this.#record?.started(e.id, e.data.pid);
  }

  async #startControlDatabase(): Promise<void> {
    const bin = findPgBinaries();
    const runAs = pgRunAs();
    const config = this.#config as WorldConfig;
    const { host, port } = this.layout.controlDatabase;
    const dataDir = join(config.pgRoot, "control");
    this.#progress(
      `control database: PostgreSQL ${bin.majorVersion} from ${bin.source === "npm" ? "npm, " : ""}${bin.bindir}${describeRunAs(runAs)}`,
    );
    this.#controlDb = new Supervised({
      id: "control-database",
      prepare: async () => {
        // A copy of the template `#startSteps` made (initdb when it is gone).
        await initPrimary(bin, dataDir, runAs, { template: pgTemplateDir(config) });
        writeSettings(dataDir, baseSettings(host, port), runAs);
      },
      spawn: () => spawnPostgres(bin, dataDir, runAs, this.state.log("control-database")),
      stopSignal: "SIGINT",
      stopGraceMs: 30_000,
      forceKill: (child) => signalGroup(child, "SIGKILL"),
      onEvent: (e) => this.#recordStart(e),
    });
    this.#controlDb.start();
    try {
      await waitReady(host, port, 60_000, this.#abort.signal);
    } catch (err) {
      if (this.#abort.signal.aborted || !(err instanceof RingfenceError)) throw err;
      const log = this.state.log("control-database");
      throw new RingfenceError(err.code, `the control database did not start: ${err.message}`, {
        problems: logProblems("control database", log, this.#marks, 8),
        cause: err,
      });
    }
    this.#progress(`control database ready on ${host}:${port}`);
  }

  /** A new world's cell databases, made before their agents start (`seed.ts`). */
  async #seedCells(): Promise<void> {
    const config = this.#config as WorldConfig;
    const seeded = await seedCells(this.topology, this.layout, {
      bin: findPgBinaries(),
      runAs: pgRunAs(),
      dataDir: (slot) => dataDirOf(config, slot),
      template: pgTemplateDir(config),
    });
    if (seeded.length > 0) {
      this.#progress(
        `cell databases seeded: ${seeded.length} cells, ${seeded.reduce((n, c) => n + 1 + c.standbys.length, 0)} instances`,
      );
    }
  }

  async #startController(): Promise<void> {
    this.#controller = this.#supervise(
      "controller",
      ["controller", "--state-dir", this.state.root],
      "controller",
    );
    this.#controller.start();
    const url = `http://${this.layout.controller.host}:${this.layout.controller.port}`;
    const log = this.state.log("controller");
    const healthy = async () => {
      const res = await httpRequest(`${url}/v1/health`, { signal: AbortSignal.timeout(1_000) });
      await res.drain();
      return res.ok;
    };
    await until(healthy, {
      timeoutMs: 60_000,
      signal: this.#abort.signal,
      failure: () =>
        new RingfenceError(
          "RINGFENCE_WORLD_START_FAILED",
          `the controller did not answer on ${url} within 60 s; everything the start had started is stopped. Its last lines:`,
          { problems: logProblems("controller", log, this.#marks, 8) },
        ),
    });
    this.#progress(`controller ready on ${url}`);
  }

  async #startWan(): Promise<void> {
    const wan = new WanEmulator();
    this.#wan = wan;
    const regions = this.topology.regions;
    for (let i = 0; i < regions.length; i++) {
      for (let j = i + 1; j < regions.length; j++) {
        const a = regions[i] as (typeof regions)[number];
        const b = regions[j] as (typeof regions)[number];
        wan.addLink(a.name, b.name, a.latencyMs[b.name] ?? 0);
      }
    }
    const forwards = wanForwards(this.layout);
    for (const f of forwards) {
      await wan.addForward({
        link: wan.link(f.from, f.to),
        listenHost: f.listen.host,
        listenPort: f.listen.port,
        targetHost: f.target.host,
        targetPort: f.target.port,
      });
    }
    this.#progress(`WAN emulator: ${wan.links().length} links, ${forwards.length} forwards`);
  }

  #startAgents(): void {
    for (const zone of this.layout.zones) {
      const agent = this.#supervise(
        `agent:${zone.id}`,
        ["agent", "--state-dir", this.state.root, "--zone", zone.id],
        `agent-${zone.id}`,
      );
      this.#agents.push(agent);
      agent.start();
    }
    this.#progress(`${this.#agents.length} agents started (one per zone)`);
  }

  #startRouters(): void {
    for (const region of this.layout.regions) {
      const router = this.#supervise(
        `router:${region.name}`,
        ["router", "--state-dir", this.state.root, "--region", region.name],
        `router-${region.name}`,
        ROUTER_NODE_FLAGS,
      );
      this.#routers.push(router);
      router.start();
    }
    this.#progress(`${this.#routers.length} routers started (one per region)`);
  }

  async #waitUntilServing(): Promise<void> {
    await waitUntilServing(this.layout, this.topology, {
      timeoutMs: this.#options.readyTimeoutMs ?? 120_000,
      logs: this.state.logs,
      signal: this.#abort.signal,
      progress: (line) => this.#progress(line),
      // Read now, before stopping adds its own lines.
      explain: (unserved) => explainUnserved(this.layout, this.state, unserved, this.#marks),
    });
  }

  /** Waits for one teardown step at most 15 s; a step that never settles is reported, not waited on forever. */
  async #bounded(what: string, step: Promise<void> | undefined): Promise<void> {
    if (step === undefined) return;
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<"expired">((resolve) => {
      timer = setTimeout(() => resolve("expired"), 15_000);
      timer.unref();
    });
    const outcome = await Promise.race([step.then(() => "done" as const), expired]);
    clearTimeout(timer);
    if (outcome === "expired") this.#progress(`${what} did not stop within 15 s; going on without it`);
  }

  /**
   * Stops routers, agents (and with them the cells), the controller, the WAN and the control
   * database, then any process of the world that outlived its parent. A start under way gives up
   * first, so that it starts nothing more. Calls while stopping share the one stop.
   */
  stop(): Promise<void> {
    this.#stopping ??= this.#stop();
    return this.#stopping;
  }

  async #stop(): Promise<void> {
    // A start under way starts nothing more: each step checks the signal before it starts anything.
    this.#abort.abort(
      new RingfenceError(
        "RINGFENCE_WORLD_START_INTERRUPTED",
        "the world was stopped while it was starting; everything the start had started is stopped",
      ),
    );
    // And nothing is restarted: a child that exits from now on (Ctrl-C reaches the whole process
    // group, so children may exit before they are asked to) stays down.
    for (const s of [...this.#routers, ...this.#agents, this.#controller, this.#controlDb]) s?.hold();
    // A stopped process would sit on its SIGTERM until the grace time ran out.
    for (const what of [...this.#paused.keys()]) this.#resume(what);
    this.#progress("stopping routers");
    await Promise.all(this.#routers.map((r) => r.stop()));
    this.#progress("stopping agents (service instances, writer endpoints, cell databases)");
    await Promise.all(this.#agents.map((a) => a.stop()));
    this.#progress("stopping the controller and the WAN emulator");
    await this.#controller?.stop();
    await this.#bounded("the WAN emulator", this.#wan?.close());
    this.#progress("stopping the control database");
    await this.#controlDb?.stop();
    await this.#steps?.catch(() => {}); // the start noticed and settled
    await this.#stopLeftovers();
    this.#record?.release();
    this.#progress("stopped");
  }

  /**
   * Processes of the world still running once every child stopped: lost from view when their
   * parent died or was SIGKILLed after its grace time (a service instance of a killed agent).
   */
  async #stopLeftovers(): Promise<void> {
    if (this.#record === undefined) return; // nothing was started
    const left = findWorldProcesses(this.state);
    if (left.length === 0) return;
    this.#progress(`stopping what outlived its parent: ${describeProcesses(left, 8)}`);
    const report = await stopOrphans(this.state, { graceMs: 5_000 });
    if (report.survivors.length > 0) {
      this.#progress(`could not stop ${describeProcesses(report.survivors)}; stop them by hand`);
    }
  }
}

/** The niceness agents and routers load at while the controller starts (as root only). */
const LOADING_NICENESS = 5;
