/**
 * `npm run drill:pause [-- --rounds N] [-- --keep] [-- --address-base N]`: processes that stop
 * without dying (SIGSTOP, then SIGCONT), under writes, on the default world. Detection judges probes
 * by when they were observed (src/failover/observer-reports.ts), so a pause may fail over only what
 * it really took away. A drill, not a test: it prints a line per step and exits 1 on any violation.
 *
 * Steps, each with its own `ringfence load` (through the routers of the regions not paused) and
 * its ledger audited by `ringfence audit` afterwards:
 *
 * - `--rounds` (5) region pauses, the regions in turn: every agent of the region with all its
 *   children (PostgreSQL, service instances) and the region's router stopped for 45 s. Only the
 *   cells whose primary was there may change epoch (and they should: they fail over);
 * - one observer agent stopped for 30 s: the agent process alone (its databases keep running), of a
 *   zone that holds no primary when there is one. Nothing may change epoch;
 * - the controller stopped for 30 s. Nothing may change epoch.
 *
 * Between steps the world settles: failback is automatic with `failover.failbackAfter: 5s`, so the
 * drill waits until every cell serves from home again and every other database streams, and the
 * epochs are read before a step and after the world has settled from it.
 */
import type { CellState } from "./contracts.js";
import { drillArgs, runDrill } from "./drill.js";
import { DrillWorld, sleep } from "./drill-world.js";

const args = drillArgs(process.argv.slice(2), { rounds: 5, addressBase: 62 });
const REGION_PAUSE_MS = 45_000;
const AGENT_PAUSE_MS = 30_000;
const CONTROLLER_PAUSE_MS = 30_000;
/** Writes per second over all cells during a step. */
const RPS = 60;

interface Step {
  readonly name: string;
  /** Regions whose routers the step's load must not use (paused ones). */
  readonly away: readonly string[];
  readonly pauseMs: number;
  /** Cells allowed to change epoch: those whose primary the pause took. */
  readonly mayMove: (before: readonly CellState[]) => string[];
  readonly pause: () => void;
  readonly resume: () => void;
}

runDrill(async () => {
  const drill = await DrillWorld.start({
    name: "pause",
    addressBase: args.addressBase,
    keep: args.keep,
    edit: (topology) => topology.setIn(["failover", "failbackAfter"], "5s"),
  });
  const { world } = drill;
  const homes = drill.homes();
  const regions = world.layout.regions.map((r) => r.name);

  const steps: Step[] = [];
  for (let i = 0; i < args.rounds; i++) {
    const region = regions[i % regions.length] as string;
    steps.push({
      name: `region ${region} paused ${REGION_PAUSE_MS / 1000} s`,
      away: [region],
      pauseMs: REGION_PAUSE_MS,
      mayMove: (before) => before.filter((c) => c.primary === region).map((c) => c.cell),
      pause: () => world.pauseRegion(region),
      resume: () => world.resumeRegion(region),
    });
  }
  // An observer: a zone whose agent holds no primary, else the first zone.
  const primaries = new Set(
    world.layout.databases.filter((d) => homes.get(d.cell) === d.region).map((d) => d.zone),
  );
  const observer = world.layout.zones.find((z) => !primaries.has(z.id)) ?? world.layout.zones[0];
  if (!observer) throw new Error("the world has no zones");
  const holds = primaries.has(observer.id)
    ? " (it holds a primary: every zone does)"
    : " (it holds no primary)";
  steps.push({
    name: `agent ${observer.id} paused ${AGENT_PAUSE_MS / 1000} s${holds}`,
    away: [],
    pauseMs: AGENT_PAUSE_MS,
    mayMove: () => [],
    pause: () => world.pauseProcess(`agent:${observer.id}`),
    resume: () => world.resumeProcess(`agent:${observer.id}`),
  });
  steps.push({
    name: `controller paused ${CONTROLLER_PAUSE_MS / 1000} s`,
    away: [],
    pauseMs: CONTROLLER_PAUSE_MS,
    mayMove: () => [],
    pause: () => world.pauseProcess("controller"),
    resume: () => world.resumeProcess("controller"),
  });

  let violations = 0;
  let checked = 0;
  for (const [n, step] of steps.entries()) {
    await drill.settle(240_000);
    const before = await drill.cells();
    const load = drill.startLoad({
      name: `step-${n + 1}`,
      rps: RPS,
      tenants: 40,
      regions: regions.filter((r) => !step.away.includes(r)),
    });
    await sleep(3_000);
    step.pause();
    try {
      await sleep(step.pauseMs);
    } finally {
      step.resume();
    }
    // A verdict that the pause provoked comes soon after it ends; give it time before settling.
    await sleep(10_000);
    await drill.settle(300_000);
    await sleep(2_000);
    const summary = await load.stop();
    const after = await drill.cells();
    const audit = await drill.audit(load.ledger);
    checked += audit.checked;
    const allowed = new Set(step.mayMove(before));
    const moved = after.filter((c) => before.find((b) => b.cell === c.cell)?.epoch !== c.epoch);
    const unexpected = moved.filter((c) => !allowed.has(c.cell));
    const stayed = [...allowed].filter((c) => !moved.some((m) => m.cell === c));
    const lost = audit.lost + audit.mismatched + audit.unverified;
    const problems = [
      ...unexpected.map(
        (c) =>
          `FALSE FAILOVER of ${c.cell} (epoch ${before.find((b) => b.cell === c.cell)?.epoch} -> ${c.epoch})`,
      ),
      ...stayed.map((c) => `${c} did not fail over although its primary was paused ${step.pauseMs / 1000} s`),
      ...(audit.passed ? [] : [`audit FAILED: ${lost} acknowledged writes lost, mismatched or unverified`]),
    ];
    violations += problems.length;
    const epochs = (cells: readonly CellState[]) => cells.map((c) => `${c.cell}:${c.epoch}`).join(" ");
    process.stdout.write(
      `step ${n + 1}/${steps.length}: ${step.name}: ${moved.length === 0 ? "no cell changed epoch" : `epochs changed for ${moved.map((c) => c.cell).join(", ")}`} (${epochs(before)} -> ${epochs(after)}); ` +
        `${audit.checked} writes acknowledged, ${summary?.writes.failed ?? "?"} failed, ${summary?.writes.unknownOutcome ?? "?"} unknown; ${lost} lost` +
        `${problems.length === 0 ? " - ok" : `\n  VIOLATION: ${problems.join("\n  VIOLATION: ")}`}\n`,
    );
  }
  await drill.stop();
  process.stdout.write(
    `\n${steps.length} steps (${args.rounds} region pauses, 1 observer agent, 1 controller), ${checked} acknowledged writes audited\n` +
      `violations: ${violations} (false failovers, cells not failed over from a paused region, acknowledged writes lost)\n`,
  );
  return violations === 0;
});
