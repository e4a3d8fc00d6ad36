/**
 * The world of a drill: the bundled default topology with a few overrides, in a folder under
 * /var/tmp that the postgres user can pass through; write traffic from `ringfence load` run as a
 * child process with its ledger; the ledger judged by `ringfence audit`, so that "no acknowledged
 * write lost" is the product's own verdict; and the controller's state, history and events. Every
 * world started is stopped by {@link stopDrillWorlds} (see drill.ts: errors, Ctrl-C).
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type Document, parseDocument } from "yaml";
import { RINGFENCE_BIN } from "../cli/paths.js";
import { queryOnce } from "../lib/postgres.js";
import type { LoadSummary } from "../load/generator.js";
import { readLedger } from "../load/ledger.js";
import { PACKAGE_ROOT } from "../topology/load.js";
import type { CellState, WorldEvent } from "./contracts.js";
import type { Ack } from "./drill-measures.js";
import { World } from "./supervisor.js";

/** Drill folders live here: /tmp may be private to this user, and PostgreSQL runs as another. */
const DRILL_ROOT = "/var/tmp";

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `check` every `everyMs` until it is true (a throw counts as not yet); false after `timeoutMs`. */
export async function poll(check: () => Promise<boolean> | boolean, timeoutMs: number, everyMs = 200) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      if (await check()) return true;
    } catch {
      // not yet
    }
    if (Date.now() > deadline) return false;
    await sleep(everyMs);
  }
}

/** What `ringfence audit --json` reports, the part drills judge. */
export interface AuditResult {
  readonly checked: number;
  readonly lost: number;
  readonly mismatched: number;
  readonly unverified: number;
  readonly routerReadFailures: number;
  readonly passed: boolean;
  /** The audit's exit code (0 passed, 1 something lost, mismatched or unverified). */
  readonly code: number;
}

/** A `ringfence load` child process writing a ledger; `stop()` ends it as Ctrl-C would. */
export interface LoadRun {
  readonly ledger: string;
  /** The acknowledged writes in the ledger so far (it is fsync'd every 200 ms), by time. */
  acks(): Promise<Ack[]>;
  /** Ends the run (SIGINT: no new arrivals, requests in flight finish) and resolves with its summary. */
  stop(): Promise<LoadSummary | undefined>;
}

export interface LoadOptions {
  /** Writes per second over every tenant (all arrivals are writes). */
  readonly rps: number;
  /** Tenants spread over the cells (every cell gets its share). */
  readonly tenants: number;
  /** Routers to send through; every region when empty. */
  readonly regions?: readonly string[];
  /** Ledger file name inside the drill's folder. */
  readonly name: string;
  /** Request deadline; default 5 s. */
  readonly timeoutMs?: number;
}

/** A finished failover, switchover or failback from `GET /v1/failover`. */
export interface HistoryEntry {
  readonly cell: string;
  /** `automatic`, `consent`, `switchover`, `failback`, or one of them with `-aborted`. */
  readonly kind: string;
  readonly startedAt: string;
  readonly record: {
    readonly from: string;
    readonly to?: string;
    readonly startedAtMs: number;
    /** Each step's time on the controller's clock: fenced, writersFenced, caughtUp, promoted, unfenced… */
    readonly steps: Readonly<Record<string, number>>;
  };
}

/** A world of a drill, with the calls drills make against it. */
export class DrillWorld {
  readonly world: World;
  readonly dir: string;
  readonly #keep: boolean;
  readonly #children = new Set<ChildProcess>();
  #stopped: Promise<void> | undefined;

  private constructor(world: World, dir: string, keep: boolean) {
    this.world = world;
    this.dir = dir;
    this.#keep = keep;
  }

  /**
   * Starts the bundled default topology, edited by `edit`, in a new folder under /var/tmp. The
   * world is stopped and its folder removed if it fails to start.
   */
  static async start(options: {
    readonly name: string;
    readonly addressBase: number;
    readonly keep: boolean;
    readonly edit?: (topology: Document) => void;
  }): Promise<DrillWorld> {
    const dir = mkdtempSync(join(DRILL_ROOT, `ringfence-drill-${options.name}-`));
    // The postgres user must pass through to the data directories inside.
    chmodSync(dir, 0o755);
    const topology = parseDocument(readFileSync(join(PACKAGE_ROOT, "topologies", "default.yaml"), "utf8"));
    options.edit?.(topology);
    writeFileSync(join(dir, "topology.yaml"), topology.toString());
    const world = new World({
      stateDir: join(dir, "state"),
      topology: join(dir, "topology.yaml"),
      addressBase: options.addressBase,
      ringfenceBin: RINGFENCE_BIN,
      readyTimeoutMs: 180_000,
      progress: (line) => process.stderr.write(`${line}\n`),
    });
    const drill = new DrillWorld(world, dir, options.keep);
    current.add(drill);
    try {
      await world.start();
    } catch (err) {
      await drill.stop();
      throw err;
    }
    return drill;
  }

  /** A GET on the controller with the reader token. */
  async controller<T>(path: string): Promise<T> {
    const { host, port } = this.world.layout.controller;
    const res = await fetch(`http://${host}:${port}${path}`, {
      headers: { authorization: `Bearer ${this.world.state.tokens().reader}` },
      signal: AbortSignal.timeout(5_000),
    });
    if (!res.ok) throw new Error(`GET ${path}: ${res.status} ${await res.text()}`);
    return (await res.json()) as T;
  }

  /** The cells as the controller has them now. */
  async cells(): Promise<CellState[]> {
    return (await this.controller<{ cells: CellState[] }>("/v1/state")).cells;
  }

  /** The finished failovers, switchovers and failbacks the controller keeps (the last 50), newest first. */
  async history(): Promise<HistoryEntry[]> {
    return (await this.controller<{ history: HistoryEntry[] }>("/v1/failover")).history;
  }

  /** The event log after event id `after`, oldest first. */
  async eventsAfter(after: number): Promise<WorldEvent[]> {
    const all: WorldEvent[] = [];
    for (;;) {
      const page = (await this.controller<{ events: WorldEvent[] }>(`/v1/events?after=${after}&limit=1000`))
        .events;
      all.push(...page);
      if (page.length < 1000) return all;
      after = (page[page.length - 1] as WorldEvent).id;
    }
  }

  /** Each cell's home region (where its primary lives when nothing has moved it). */
  homes(): Map<string, string> {
    return new Map(this.world.topology.cells.list.map((c) => [c.id, c.home]));
  }

  /** Runs the CLI against this world; resolves with its exit code and output, whatever the code. */
  cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    return new Promise((resolve) => {
      const child = execFile(
        process.execPath,
        [RINGFENCE_BIN, ...args, "--state-dir", this.world.state.root],
        { timeout: 600_000, maxBuffer: 64 * 1024 * 1024 },
        (err, stdout, stderr) => {
          this.#children.delete(child);
          resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
        },
      );
      this.#children.add(child);
    });
  }

  /** Starts `ringfence load` (writes only) against this world as a child process. */
  startLoad(options: LoadOptions): LoadRun {
    const ledger = join(this.dir, `${options.name}.jsonl`);
    const args = [
      RINGFENCE_BIN,
      "load",
      "--rps",
      String(options.rps),
      "--tenants",
      String(options.tenants),
      "--write-ratio",
      "1",
      "--duration",
      "24h",
      "--timeout",
      String(options.timeoutMs ?? 5_000),
      "--ledger",
      ledger,
      "--json",
      "--state-dir",
      this.world.state.root,
      ...(options.regions ?? []).flatMap((r) => ["--region", r]),
    ];
    // Its own process group: a Ctrl-C at the terminal is the drill's to handle, not the load's.
    const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "pipe"], detached: true });
    this.#children.add(child);
    let stdout = "";
    let stderr = "";
    child.stdout?.on("data", (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr?.on("data", (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-4_000);
    });
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    void exited.then(() => this.#children.delete(child));
    return {
      ledger,
      acks: () => readAcks(ledger),
      stop: async () => {
        if (child.exitCode === null && child.signalCode === null) child.kill("SIGINT");
        const code = await exited;
        if (code !== 0) {
          process.stderr.write(`ringfence load exited with ${code}: ${stderr.trim().split("\n").pop()}\n`);
          return undefined;
        }
        try {
          return JSON.parse(stdout) as LoadSummary;
        } catch {
          return undefined;
        }
      },
    };
  }

  /** `ringfence audit --ledger FILE --json`: every acknowledged write looked for on its cell's primary. */
  async audit(ledger: string): Promise<AuditResult> {
    const out = await this.cli("audit", "--ledger", ledger, "--json");
    try {
      const report = JSON.parse(out.stdout) as Omit<AuditResult, "code">;
      return { ...report, code: out.code };
    } catch {
      throw new Error(`ringfence audit --ledger ${ledger} failed (exit ${out.code}): ${out.stderr.trim()}`);
    }
  }

  /**
   * Waits until every database of `region` streams from its cell's primary; with `standbysOnly`,
   * every one that is not its cell's primary now. Throws after `timeoutMs`.
   */
  async waitStreaming(
    region: string,
    timeoutMs: number,
    options: { standbysOnly?: boolean } = {},
  ): Promise<void> {
    const streaming = await poll(async () => {
      const primaries = options.standbysOnly
        ? new Set((await this.cells()).map((c) => `${c.cell}/${c.primary}`))
        : undefined;
      const mine = this.world.layout.databases.filter(
        (d) => d.region === region && !primaries?.has(`${d.cell}/${d.region}`),
      );
      const states = await Promise.all(
        mine.map((db) =>
          queryOnce<{ r: boolean }>(
            db.host,
            db.port,
            "SELECT pg_is_in_recovery() AND EXISTS (SELECT 1 FROM pg_stat_wal_receiver WHERE status = 'streaming') AS r",
          ).catch(() => []),
        ),
      );
      return states.every((rows) => rows[0]?.r === true);
    }, timeoutMs);
    if (!streaming)
      throw new Error(`the databases of ${region} did not stream again within ${timeoutMs / 1000} s`);
  }

  /**
   * Waits until the world is back where it started: every cell serving, unfenced, from its home
   * region, and every other database streaming from its primary. Throws after `timeoutMs`.
   */
  async settle(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const homes = this.homes();
    const home = await poll(async () => {
      const doc = await this.controller<{ cells: { cell: CellState; phase: string }[] }>("/v1/failover");
      return doc.cells.every(
        (c) => c.phase === "serving" && !c.cell.fenced && c.cell.primary === homes.get(c.cell.cell),
      );
    }, timeoutMs);
    if (!home) throw new Error(`the cells did not all serve from home again within ${timeoutMs / 1000} s`);
    for (const region of this.world.layout.regions)
      await this.waitStreaming(region.name, Math.max(1_000, deadline - Date.now()), { standbysOnly: true });
  }

  /** Stops what the drill started (load, CLI calls), then the world; removes the folder unless kept. */
  stop(): Promise<void> {
    this.#stopped ??= (async () => {
      for (const child of this.#children) child.kill("SIGKILL");
      await this.world.stop();
      current.delete(this);
      if (this.#keep) {
        process.stderr.write(`kept: ${this.dir}\n`);
        return;
      }
      const pgRoot = this.world.state.exists() ? this.world.state.readConfig().pgRoot : undefined;
      rmSync(this.dir, { recursive: true, force: true });
      if (pgRoot && !pgRoot.startsWith(this.dir)) rmSync(pgRoot, { recursive: true, force: true });
    })();
    return this.#stopped;
  }
}

/** Worlds started and not yet stopped: an interrupted drill stops them. */
const current = new Set<DrillWorld>();

/** Stops every drill world not stopped yet (and what each started). */
export async function stopDrillWorlds(): Promise<void> {
  await Promise.allSettled([...current].map((w) => w.stop()));
}

/** The acknowledged writes of a ledger, oldest first. */
async function readAcks(ledger: string): Promise<Ack[]> {
  const read = await readLedger(ledger);
  return read.entries
    .map((e) => ({ cell: e.cell, atMs: Date.parse(e.ackAt) }))
    .sort((a, b) => a.atMs - b.atMs);
}
