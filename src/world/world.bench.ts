/**
 * `npm run bench:world`: how fast the default world starts serving and how much memory it holds.
 *
 * - Cold start: `ringfence up --detach` on a fresh state directory, until every region's router
 *   serves every cell (target: 30 s). Warm start: the same on the existing state after `down`.
 * - Memory: resident (RSS, shared pages counted in every process) and proportional (PSS, shared
 *   pages divided among their users) set sizes summed over the world's process tree.
 * - Baseline measured in the same run: initdb + start + first query of one bare PostgreSQL
 *   instance, the unit of work the world repeats for each cell database.
 */
import { spawnSync } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { RINGFENCE_BIN } from "../cli/paths.js";
import { startTestCluster } from "../lib/postgres-testing.js";
import { processTree } from "../lib/proctree.js";

const ADDRESS_BASE = "77";

function run(args: string[]): number {
  const start = performance.now();
  const r = spawnSync(process.execPath, [RINGFENCE_BIN, ...args], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`ringfence ${args.join(" ")} failed: ${r.stderr}`);
  return (performance.now() - start) / 1000;
}

function memory(pid: number): { processes: number; rssMiB: number; pssMiB: number } {
  let rss = 0;
  let pss = 0;
  const tree = processTree(pid);
  for (const p of tree) {
    try {
      rss += Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${p}/status`, "utf8"))?.[1] ?? 0);
      pss += Number(/Pss:\s+(\d+)/.exec(readFileSync(`/proc/${p}/smaps_rollup`, "utf8"))?.[1] ?? 0);
    } catch {
      // the process ended
    }
  }
  return { processes: tree.length, rssMiB: Math.round(rss / 1024), pssMiB: Math.round(pss / 1024) };
}

async function main(): Promise<void> {
  console.log("ringfence bench:world (default topology)");
  const start = performance.now();
  const cluster = await startTestCluster();
  const bare = (performance.now() - start) / 1000;
  await cluster.stop();
  console.log(`baseline: one bare PostgreSQL instance, initdb + start + first query: ${bare.toFixed(2)} s`);

  const dir = mkdtempSync(join(tmpdir(), "ringfence-bench-"));
  chmodSync(dir, 0o755);
  const stateDir = join(dir, "state");
  const up = ["up", "--detach", "--state-dir", stateDir, "--address-base", ADDRESS_BASE];
  const down = ["down", "--state-dir", stateDir];
  try {
    const cold = run(up);
    const pid = Number(readFileSync(join(stateDir, "supervisor.pid"), "utf8"));
    await new Promise((r) => setTimeout(r, 5_000)); // let start-up settle before measuring memory
    const mem = memory(pid);
    const stop = run(down);
    const warm = run(up);
    run(down);
    console.log(
      `cold start to serving: ${cold.toFixed(1)} s (${(cold / bare).toFixed(1)}x the baseline; target 30 s)`,
    );
    console.log(`warm start to serving: ${warm.toFixed(1)} s (${(warm / bare).toFixed(1)}x the baseline)`);
    console.log(`down: ${stop.toFixed(1)} s`);
    console.log(`memory: ${mem.processes} processes, RSS ${mem.rssMiB} MiB summed, PSS ${mem.pssMiB} MiB`);
  } finally {
    spawnSync(process.execPath, [RINGFENCE_BIN, ...down]);
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
