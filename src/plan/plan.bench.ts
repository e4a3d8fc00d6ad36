/**
 * `npm run bench:plan`: how fast `ringfence plan` judges the internet-scale example.
 *
 * 1. The whole command, `ringfence plan examples/internet-scale.yaml --simulate 10`, pinned to one
 *    core with taskset when available (target: under 10 s).
 * 2. The simulator's events per second against a baseline measured in the same run: a naive
 *    simulator that re-evaluates every affected scenario block on each event instead of
 *    propagating the change incrementally.
 */
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { Random } from "../lib/random.js";
import { YEAR_MS } from "../lib/units.js";
import { loadTopology, PACKAGE_ROOT } from "../topology/load.js";
import { BlockEvaluator } from "./blocks.js";
import { availabilityOf, buildModel, type PlanModel } from "./model.js";
import { simulate } from "./simulate.js";

const EXAMPLE = join(PACKAGE_ROOT, "examples", "internet-scale.yaml");
const BIN = join(PACKAGE_ROOT, "dist", "cli", "main.js");

function wholeCommand(): number[] {
  const hasTaskset = spawnSync("taskset", ["--version"]).status === 0;
  const argv = [process.execPath, BIN, "plan", EXAMPLE, "--simulate", "10", "--json"];
  const times: number[] = [];
  for (let i = 0; i < 3; i++) {
    const start = performance.now();
    const r = hasTaskset
      ? spawnSync("taskset", ["-c", "0", ...argv])
      : spawnSync(argv[0] as string, argv.slice(1));
    if (r.status !== 0) throw new Error(`plan failed: ${r.stderr}`);
    times.push((performance.now() - start) / 1000);
  }
  console.log(`whole command${hasTaskset ? " (taskset -c 0)" : " (taskset not found: not pinned)"}:`);
  console.log(
    `  ringfence plan examples/internet-scale.yaml --simulate 10: ${times.map((t) => `${t.toFixed(2)} s`).join(", ")} (target < 10 s)`,
  );
  return times;
}

/** The naive baseline: every event re-evaluates each scenario block that contains the component. */
function naiveEventsPerSecond(model: PlanModel, seconds: number): number {
  const evaluator = new BlockEvaluator(availabilityOf(model));
  const entries = [...model.catalog.values()];
  const blocksOf = new Map<string, { block: (typeof model.scenarios)[number]["cells"][number]["block"] }[]>();
  for (const s of model.scenarios) {
    for (const c of s.cells) {
      for (const id of evaluator.idsOf(c.block)) {
        const list = blocksOf.get(id) ?? [];
        list.push(c);
        blocksOf.set(id, list);
      }
    }
  }
  const rng = new Random(1);
  const next = entries.map((e) => rng.exponential(e.mtbfMs));
  const down = new Set<string>();
  let events = 0;
  let sink = 0;
  const start = performance.now();
  while (performance.now() - start < seconds * 1000) {
    for (let batch = 0; batch < 1000; batch++) {
      let i = 0;
      for (let j = 1; j < next.length; j++) if ((next[j] as number) < (next[i] as number)) i = j;
      const e = entries[i];
      if (!e) break;
      const t = next[i] as number;
      if (down.has(e.id)) {
        down.delete(e.id);
        next[i] = t + rng.exponential(e.mtbfMs);
      } else {
        down.add(e.id);
        next[i] = t + rng.exponential(e.mttrMs);
      }
      for (const c of blocksOf.get(e.id) ?? []) if (evaluator.survives(c.block, down)) sink++;
      events++;
      if (t > YEAR_MS) break;
    }
  }
  if (sink < 0) console.log(sink);
  return events / ((performance.now() - start) / 1000);
}

function main(): void {
  console.log("ringfence bench:plan");
  wholeCommand();
  const topology = loadTopology(EXAMPLE);
  const model = buildModel(topology);
  const start = performance.now();
  const result = simulate(model, { years: 10, seed: 1 });
  const seconds = (performance.now() - start) / 1000;
  const incremental = result.events / seconds;
  const naive = naiveEventsPerSecond(model, Math.max(2, seconds));
  console.log("simulator (in process, 10 years, 1 seed):");
  console.log(`  ${result.events.toLocaleString("en-US")} events in ${seconds.toFixed(2)} s`);
  console.log(`  incremental graph: ${Math.round(incremental).toLocaleString("en-US")} events/s`);
  console.log(`  naive re-evaluation baseline: ${Math.round(naive).toLocaleString("en-US")} events/s`);
  console.log(`  ratio: ${(incremental / naive).toFixed(1)}x`);
}

main();
