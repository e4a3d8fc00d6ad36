/**
 * One service instance (or fallback instance) run by the agent of its zone: the topology's command
 * with ringfence's environment, supervised, and probed on its health path every second.
 */

import { spawn } from "node:child_process";
import { closeSync, openSync } from "node:fs";
import { httpRequest } from "../lib/http-request.js";
import { CHILD_NODE_FLAGS, withExtraNodeFlags } from "../lib/node-flags.js";
import { waitUntilAccepting } from "../lib/ports.js";
import type { Health } from "../world/contracts.js";
import type { InstanceSlot, Layout } from "../world/layout.js";
import { reniceQuietly } from "../world/procfs.js";
import { Supervised, type SupervisorEvent } from "./supervisor.js";

/**
 * The scheduling niceness of service instances (0 is the default, 19 the lowest priority). A local
 * world runs everything on one machine: dozens of instances under load would otherwise take the CPU
 * from what stands for separate hosts and the network (the WAN emulator, the agents' probes, the
 * controller, PostgreSQL), and failure detection would see healthy primaries as unreachable. On
 * real hosts, instances do not share CPUs with the network; a lower priority gives the local world
 * the same property. Instances still get all the CPU nothing more urgent uses.
 */
export const INSTANCE_NICENESS = 10;

/**
 * The niceness a fallback instance starts at on the world's first start, until its first health
 * check passes. A fallback serves only when its service fails; while a new world starts, it is not
 * what the world waits for, and the 12 fallbacks of the default world took ~4 s of CPU from the
 * databases and service instances that were (docs/benchmarks.md, "The local world"). A fallback
 * restarted later starts at `INSTANCE_NICENESS`: then it may be what serves.
 */
export const FALLBACK_START_NICENESS = 19;

/** How often a started instance is probed until it first passes its health check. */
const START_PROBE_MS = 100;
/** How long after its start an instance is probed that often at most. */
const START_WATCH_MS = 60_000;

export interface InstanceOptions {
  readonly slot: InstanceSlot;
  readonly layout: Layout;
  readonly version: string;
  readonly tokenSecret: string;
  /** Absolute path of the ringfence CLI: a command starting with `ringfence` runs it with this node. */
  readonly ringfenceBin: string;
  /** Working directory for commands (the topology file's folder). */
  readonly cwd: string;
  readonly logFile: string;
  readonly onEvent: (e: SupervisorEvent) => void;
  /**
   * How long the first start waits for the instance's local replica to accept connections; 20 s by
   * default. A world starting on a small machine then starts each cell's databases before the
   * instances that read from them, instead of every process at once. Later restarts never wait: an
   * instance whose replica is down must still run (it reads from the primary, and its fallback
   * serves), and its health check says what it lacks.
   */
  readonly replicaWaitMs?: number;
  /** Scheduling niceness of the instance's process; `INSTANCE_NICENESS` by default. */
  readonly niceness?: number;
  /** Called when a probe finds the health changed (not on every probe), with the probe's detail. */
  readonly onHealthChange?: (health: Health, detail: string) => void;
}

/**
 * The argv of a topology command: `ringfence ...` runs this ringfence with the current node (and
 * the V8 flags of ringfence's own processes); anything else runs as written.
 */
export function resolveCommand(command: readonly string[], ringfenceBin: string): string[] {
  if (command[0] === "ringfence") {
    return [process.execPath, ...withExtraNodeFlags(CHILD_NODE_FLAGS), ringfenceBin, ...command.slice(1)];
  }
  return [...command];
}

/** The environment a service instance gets (see DESIGN.md, "service instances"). */
export function instanceEnv(
  slot: InstanceSlot,
  layout: Layout,
  version: string,
  tokenSecret: string,
): Record<string, string> {
  const replica = layout.databases.find((d) => d.cell === slot.cell && d.region === slot.region);
  const writer = layout.writers.find((w) => w.cell === slot.cell && w.region === slot.region);
  if (!replica || !writer) throw new Error(`no database or writer endpoint for ${slot.id}`);
  return {
    PORT: String(slot.port),
    HOST: slot.host,
    RINGFENCE_REGION: slot.region,
    RINGFENCE_ZONE: slot.zone,
    RINGFENCE_CELL: slot.cell,
    RINGFENCE_VERSION: version,
    RINGFENCE_INSTANCE: slot.id,
    DATABASE_URL: `postgres://ringfence@${replica.host}:${replica.port}/postgres`,
    ...(slot.kind === "service"
      ? { DATABASE_WRITE_URL: `postgres://ringfence@${writer.host}:${writer.port}/postgres` }
      : {}),
    RINGFENCE_TOKEN_SECRET: tokenSecret,
  };
}

export class InstanceRunner {
  readonly slot: InstanceSlot;
  readonly supervised: Supervised;
  #health: Health = "unknown";
  /** The health `onHealthChange` was last called with. */
  #told: Health = "unknown";
  #detail = "starting";
  #onHealthChange: ((health: Health, detail: string) => void) | undefined;
  /** A fallback started at `FALLBACK_START_NICENESS`, and the niceness it gets once healthy. */
  #reniceWhenHealthy: { pid: number; niceness: number } | undefined;

  constructor(options: InstanceOptions) {
    this.slot = options.slot;
    this.#onHealthChange = options.onHealthChange;
    const env = instanceEnv(options.slot, options.layout, options.version, options.tokenSecret);
    const argv = resolveCommand(options.slot.command, options.ringfenceBin);
    const replica = options.layout.databases.find(
      (d) => d.cell === options.slot.cell && d.region === options.slot.region,
    );
    let firstStart = true;
    let firstSpawn = true;
    const niceness = options.niceness ?? INSTANCE_NICENESS;
    this.supervised = new Supervised({
      id: `instance:${options.slot.id}`,
      prepare: async () => {
        if (!firstStart || !replica) return;
        firstStart = false;
        this.#detail = `waiting for the local replica ${replica.host}:${replica.port} before the first start`;
        await waitUntilAccepting(replica.host, replica.port, {
          timeoutMs: options.replicaWaitMs ?? 20_000,
          everyMs: 100,
        });
        this.#detail = "starting";
      },
      spawn: () => {
        const log = openSync(options.logFile, "a");
        try {
          const child = spawn(argv[0] as string, argv.slice(1), {
            cwd: options.cwd,
            stdio: ["ignore", log, log],
            env: { ...process.env, ...env },
          });
          const deferred =
            firstSpawn && options.slot.kind === "fallback" && niceness < FALLBACK_START_NICENESS;
          firstSpawn = false;
          if (child.pid !== undefined) {
            reniceQuietly(child.pid, deferred ? FALLBACK_START_NICENESS : niceness);
            this.#reniceWhenHealthy = deferred ? { pid: child.pid, niceness } : undefined;
            this.#watchStart(child.pid);
          }
          return child;
        } finally {
          closeSync(log); // the child has its own copy
        }
      },
      stopSignal: "SIGTERM",
      stopGraceMs: 5_000,
      onEvent: options.onEvent,
    });
  }

  get health(): Health {
    return this.#health;
  }
  get detail(): string {
    return this.#detail;
  }

  start(): void {
    this.supervised.start();
  }

  async stop(): Promise<void> {
    await this.supervised.stop();
  }

  /**
   * Probes the instance just started as `pid` every `START_PROBE_MS` until it first passes its
   * health check (or exits, or `START_WATCH_MS` pass): its health reaches the agent's next
   * heartbeat, and the routers, within ~100 ms of it listening instead of up to a probe period.
   */
  #watchStart(pid: number): void {
    const until = Date.now() + START_WATCH_MS;
    const next = () => {
      if (this.supervised.pid !== pid || this.#health === "healthy" || Date.now() > until) return;
      void this.probe().finally(() => {
        setTimeout(next, START_PROBE_MS).unref();
      });
    };
    setTimeout(next, START_PROBE_MS).unref();
  }

  async probe(): Promise<void> {
    await this.#probe();
    // Two probes may overlap (the start watch and the agent's tick): each change is told once.
    if (this.#health !== this.#told) {
      this.#told = this.#health;
      this.#onHealthChange?.(this.#health, this.#detail);
    }
  }

  /** GETs the health path with a 1 s timeout; never throws. */
  async #probe(): Promise<void> {
    if (this.supervised.pid === null) {
      this.#health = "unhealthy";
      this.#detail = `not running (${this.supervised.state})`;
      return;
    }
    try {
      const res = await httpRequest(`http://${this.slot.host}:${this.slot.port}${this.slot.healthPath}`, {
        signal: AbortSignal.timeout(1_000),
      });
      await res.drain();
      if (res.ok) {
        this.#health = "healthy";
        this.#detail = "health check passed";
        this.supervised.markRunning();
        const later = this.#reniceWhenHealthy;
        this.#reniceWhenHealthy = undefined;
        if (later && later.pid === this.supervised.pid) reniceQuietly(later.pid, later.niceness);
      } else {
        this.#health = "unhealthy";
        this.#detail = `health check answered ${res.status}`;
      }
    } catch (err) {
      this.#health = "unhealthy";
      this.#detail = `health check failed: ${(err as Error).message}`;
    }
  }
}
