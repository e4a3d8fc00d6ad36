/**
 * `npm run bench:world [-- --cold N --warm M --json]`: how fast and how reliably the default world
 * starts, as a user's `ringfence up` does, and how much memory it holds.
 *
 * - Cold starts (10 by default): `ringfence up --detach` into a new state directory each time,
 *   until every region's router serves every cell. Targets: median ≤ 15 s, worst ≤ 25 s, no
 *   failed start, no failover during start.
 * - Warm starts (5 by default): `down`, then `up` again on the state of the last cold start.
 *   Target: ≤ 8 s each, no failover.
 * - Memory: PSS (shared pages divided among their users) summed over the world's process tree, 20 s
 *   after each cold start served, when start-up garbage has mostly been collected. Target ≤ 1 GiB.
 * - Failovers during start: failovers the controller started (its history, aborted ones included)
 *   and cells whose epoch moved, between `up` and the end of the memory wait.
 * - Baseline measured in the same run: initdb + start + first query of one bare PostgreSQL
 *   instance, the unit of work the world repeats for each cell database.
 *
 * Exits 1 when a target is missed. A bench, not a test: it takes ~8 minutes.
 */
import { spawnSync } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { RINGFENCE_BIN } from "../cli/paths.js";
import { httpRequest } from "../lib/http-request.js";
import { startTestCluster } from "../lib/postgres-testing.js";
import { processTree } from "../lib/proctree.js";
import { readCompiledTopology } from "../topology/compiled.js";
import type { CellState } from "./contracts.js";
import { buildLayout } from "./layout.js";
import { StateDir } from "./state.js";

const args = process.argv.slice(2);
const option = (name: string, fallback: number) => {
  const i = args.indexOf(name);
  const value = i >= 0 ? Number(args[i + 1]) : fallback;
  return Number.isInteger(value) && value >= 0 ? value : fallback;
};
const COLD = option("--cold", 10);
const WARM = option("--warm", 5);
const JSON_OUT = args.includes("--json");
const ADDRESS_BASE = "77";
const SETTLE_MS = 20_000;
const TARGETS = { coldMedianS: 15, coldWorstS: 25, warmWorstS: 8, pssMiB: 1024 } as const;

const say = (line: string) => {
  if (!JSON_OUT) process.stdout.write(`${line}\n`);
};

/** Runs the CLI; the seconds it took and whether it exited 0, with its stderr when not. */
function ringfence(argv: string[]): { seconds: number; ok: boolean; stderr: string } {
  const start = performance.now();
  const r = spawnSync(process.execPath, [RINGFENCE_BIN, ...argv], { encoding: "utf8" });
  return { seconds: (performance.now() - start) / 1000, ok: r.status === 0, stderr: r.stderr };
}

function pssMiB(pid: number): { processes: number; pssMiB: number } {
  let pss = 0;
  const tree = processTree(pid);
  for (const p of tree) {
    try {
      pss += Number(/Pss:\s+(\d+)/.exec(readFileSync(`/proc/${p}/smaps_rollup`, "utf8"))?.[1] ?? 0);
    } catch {
      // the process ended
    }
  }
  return { processes: tree.length, pssMiB: Math.round(pss / 1024) };
}

interface FailoverView {
  readonly cells: { readonly cell: CellState; readonly failover: { readonly reason?: string } | null }[];
  readonly history: { readonly cell?: string; readonly record?: { readonly reason?: string } }[];
}

/** Why each failover of `after` not in `before` started: `cell: reason`. */
function failoverReasons(before: FailoverView | undefined, after: FailoverView): string[] {
  const fresh = after.history.slice(0, after.history.length - (before?.history.length ?? 0));
  return [
    ...fresh.map((h) => `${h.cell}: ${h.record?.reason ?? "?"}`),
    ...after.cells
      .filter((c) => c.failover)
      .map((c) => `${c.cell.cell}: ${c.failover?.reason ?? "?"} (in progress)`),
  ];
}

/** The controller's failover view, with the reader token of the world in `state`. */
async function failoverView(state: StateDir): Promise<FailoverView> {
  const { host, port } = buildLayout(
    readCompiledTopology(state.compiledTopologyFile),
    state.readConfig().addressBase,
  ).controller;
  // A few tries: a connection kept from the world's previous run may be found closed.
  for (let attempt = 1; ; attempt++) {
    try {
      const res = await httpRequest(`http://${host}:${port}/v1/failover`, {
        headers: { authorization: `Bearer ${state.tokens().reader}` },
        signal: AbortSignal.timeout(5_000),
      });
      if (!res.ok) throw new Error(`GET /v1/failover answered ${res.status}`);
      return await res.json<FailoverView>();
    } catch (err) {
      if (attempt >= 5) throw err;
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}

/** Failovers started since `before`, and cells whose epoch moved. */
function failoversSince(before: FailoverView | undefined, after: FailoverView): number {
  const started = after.history.length - (before?.history.length ?? 0);
  const moved = after.cells.filter((c) => {
    const was = before?.cells.find((b) => b.cell.cell === c.cell.cell)?.cell.epoch ?? 1;
    return c.cell.epoch !== was;
  }).length;
  return Math.max(started, moved) + after.cells.filter((c) => c.cell.fenced).length;
}

function quantile(values: number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] ?? Number.NaN;
}

interface Start {
  readonly kind: "cold" | "warm";
  readonly seconds: number;
  readonly ok: boolean;
  readonly failovers: number;
  readonly pssMiB?: number;
  readonly processes?: number;
  readonly error?: string;
}

async function main(): Promise<void> {
  say("ringfence bench:world (default topology)");
  const t0 = performance.now();
  const cluster = await startTestCluster();
  const bare = (performance.now() - t0) / 1000;
  await cluster.stop();
  say(`baseline: one bare PostgreSQL instance, initdb + start + first query: ${bare.toFixed(2)} s`);

  const starts: Start[] = [];
  const dirs: string[] = [];
  let last: StateDir | undefined;
  const cleanUp = () => {
    for (const dir of dirs) {
      const state = new StateDir(join(dir, "state"));
      ringfence(["down", "--state-dir", state.root]);
      const pgRoot = state.exists() ? state.readConfig().pgRoot : undefined;
      rmSync(dir, { recursive: true, force: true });
      if (pgRoot && !pgRoot.startsWith(dir)) rmSync(pgRoot, { recursive: true, force: true });
    }
  };
  // Ctrl-C or a kill stops the worlds first: none may outlive the bench.
  for (const [signal, code] of [
    ["SIGINT", 130],
    ["SIGTERM", 143],
  ] as const) {
    process.once(signal, () => {
      cleanUp();
      process.exit(code);
    });
  }
  try {
    for (let i = 0; i < COLD; i++) {
      // The previous world stops; its files (~350 MB) are deleted at the end, not right before the
      // next start: a user's `up` does not follow such a deletion, and on a disk mounted with
      // `discard` (this machine's) the trims would compete with the new databases' fsyncs.
      if (last) ringfence(["down", "--state-dir", last.root]);
      // Under /var/tmp: PostgreSQL runs as another user, who must reach the data directories.
      const dir = mkdtempSync("/var/tmp/ringfence-bench-");
      chmodSync(dir, 0o755);
      dirs.push(dir);
      const state = new StateDir(join(dir, "state"));
      last = state;
      const up = ringfence(["up", "--detach", "--state-dir", state.root, "--address-base", ADDRESS_BASE]);
      if (!up.ok) {
        starts.push({
          kind: "cold",
          seconds: up.seconds,
          ok: false,
          failovers: 0,
          error: up.stderr.trim().split("\n").at(-1),
        });
        say(
          `cold ${i + 1}/${COLD}: FAILED after ${up.seconds.toFixed(1)} s: ${up.stderr.trim().split("\n").at(-1)}`,
        );
        last = undefined;
        ringfence(["down", "--state-dir", state.root]);
        continue;
      }
      await new Promise((r) => setTimeout(r, SETTLE_MS));
      const pid = Number(readFileSync(state.pidFile, "utf8"));
      const mem = pssMiB(pid);
      const view = await failoverView(state);
      const failovers = failoversSince(undefined, view);
      starts.push({ kind: "cold", seconds: up.seconds, ok: true, failovers, ...mem });
      say(
        `cold ${i + 1}/${COLD}: serving after ${up.seconds.toFixed(1)} s, ${failovers} failovers during start, PSS ${mem.pssMiB} MiB over ${mem.processes} processes`,
      );
      for (const reason of failovers > 0 ? failoverReasons(undefined, view) : []) say(`  failover ${reason}`);
    }
    for (let i = 0; i < WARM && last; i++) {
      const before = await failoverView(last);
      ringfence(["down", "--state-dir", last.root]);
      const up = ringfence(["up", "--detach", "--state-dir", last.root, "--address-base", ADDRESS_BASE]);
      const after = up.ok ? await failoverView(last) : undefined;
      const failovers = after ? failoversSince(before, after) : 0;
      starts.push({ kind: "warm", seconds: up.seconds, ok: up.ok, failovers });
      say(
        `warm ${i + 1}/${WARM}: ${up.ok ? `serving after ${up.seconds.toFixed(1)} s, ${failovers} failovers during start` : `FAILED: ${up.stderr.trim().split("\n").at(-1)}`}`,
      );
      for (const reason of after && failovers > 0 ? failoverReasons(before, after) : [])
        say(`  failover ${reason}`);
    }
  } finally {
    cleanUp();
  }

  const cold = starts.filter((s) => s.kind === "cold");
  const warm = starts.filter((s) => s.kind === "warm");
  const coldTimes = cold.filter((s) => s.ok).map((s) => s.seconds);
  const warmTimes = warm.filter((s) => s.ok).map((s) => s.seconds);
  const pss = cold.flatMap((s) => (s.pssMiB === undefined ? [] : [s.pssMiB]));
  const summary = {
    baselineS: bare,
    cold: {
      runs: cold.length,
      failed: cold.filter((s) => !s.ok).length,
      medianS: quantile(coldTimes, 0.5),
      worstS: Math.max(...coldTimes),
      failovers: cold.reduce((n, s) => n + s.failovers, 0),
    },
    warm: {
      runs: warm.length,
      failed: warm.filter((s) => !s.ok).length,
      medianS: quantile(warmTimes, 0.5),
      worstS: Math.max(...warmTimes),
      failovers: warm.reduce((n, s) => n + s.failovers, 0),
    },
    pssMiB: { median: quantile(pss, 0.5), max: Math.max(...pss) },
    targets: TARGETS,
    starts,
  };
  const missed = [
    summary.cold.failed + summary.warm.failed > 0 && "failed starts",
    summary.cold.failovers + summary.warm.failovers > 0 && "failovers during start",
    !(summary.cold.medianS <= TARGETS.coldMedianS) && "cold median",
    !(summary.cold.worstS <= TARGETS.coldWorstS) && "cold worst",
    warm.length > 0 && !(summary.warm.worstS <= TARGETS.warmWorstS) && "warm worst",
    !(summary.pssMiB.max <= TARGETS.pssMiB) && "memory",
  ].filter((m): m is string => typeof m === "string");
  if (JSON_OUT) {
    process.stdout.write(`${JSON.stringify({ ...summary, missed }, null, 2)}\n`);
  } else {
    const x = (s: number) => `${(s / bare).toFixed(1)}x the baseline`;
    say("");
    say(
      `cold start, ${cold.length} runs: median ${summary.cold.medianS.toFixed(1)} s (${x(summary.cold.medianS)}; target ${TARGETS.coldMedianS} s), worst ${summary.cold.worstS.toFixed(1)} s (target ${TARGETS.coldWorstS} s), failed ${summary.cold.failed}, failovers during start ${summary.cold.failovers}`,
    );
    if (warm.length > 0) {
      say(
        `warm start, ${warm.length} runs: median ${summary.warm.medianS.toFixed(1)} s (${x(summary.warm.medianS)}), worst ${summary.warm.worstS.toFixed(1)} s (target ${TARGETS.warmWorstS} s), failed ${summary.warm.failed}, failovers during start ${summary.warm.failovers}`,
      );
    }
    say(
      `memory ${SETTLE_MS / 1000} s after serving, PSS summed over the world: median ${summary.pssMiB.median} MiB, max ${summary.pssMiB.max} MiB (target ${TARGETS.pssMiB} MiB)`,
    );
    say(missed.length === 0 ? "every target met" : `MISSED: ${missed.join(", ")}`);
  }
  if (missed.length > 0) process.exitCode = 1;
}

await main();
