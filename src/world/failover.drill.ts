/**
 * `npm run drill:failover [-- --rounds N] [-- --keep] [-- --address-base N]`: region loss, again and
 * again, on the default world, under writes; prints per round the time until writes to the lost
 * cells are accepted again, the writes that failed meanwhile and the acknowledged writes lost (must
 * be 0, by `ringfence audit`), then the median and maximum. A drill, not a test: it takes minutes
 * and its figures go to docs/benchmarks.md.
 *
 * Each round: pick the cell whose primary is next in turn, start `ringfence load` through the
 * routers of the other regions, SIGKILL the primary's whole region (its agents with every child,
 * and its router), wait until every cell that lived there serves writes from another region, stop
 * the load, restore the region, wait until its databases stream again as standbys, and audit the
 * round's ledger. The world is the bundled default topology with `failover.failback: manual`, so
 * that no failback runs in the middle of a round (failback has its own drill: drill:switchover).
 */
import type { CellState } from "./contracts.js";
import { drillArgs, runDrill } from "./drill.js";
import { percentile, seconds, writeGap } from "./drill-measures.js";
import { DrillWorld, poll, sleep } from "./drill-world.js";

interface Round {
  readonly region: string;
  readonly cells: string[];
  readonly writesBackMs: number;
  readonly failedWrites: number;
  readonly lost: number;
}

const args = drillArgs(process.argv.slice(2), { rounds: 20, addressBase: 60 });

runDrill(async () => {
  const drill = await DrillWorld.start({
    name: "failover",
    addressBase: args.addressBase,
    keep: args.keep,
    edit: (topology) => topology.setIn(["failover", "failback"], "manual"),
  });
  const results: Round[] = [];
  let acknowledged = 0;
  for (let i = 0; i < args.rounds; i++) {
    const before = await drill.cells();
    const target = before[i % before.length] as CellState;
    const region = target.primary;
    const lostCells = before.filter((c) => c.primary === region).map((c) => c.cell);
    const load = drill.startLoad({
      name: `round-${i + 1}`,
      rps: 100,
      tenants: 40,
      regions: drill.world.layout.regions.map((r) => r.name).filter((r) => r !== region),
    });
    await sleep(3_000);
    const killedAt = Date.now();
    await drill.world.killRegion(region);
    // Moved: every lost cell is served, unfenced, from another region; then a few writes more.
    const moved = await poll(async () => {
      const now = await drill.cells();
      return lostCells.every((c) => now.some((x) => x.cell === c && x.primary !== region && !x.fenced));
    }, 60_000);
    const movedAt = Date.now();
    await sleep(2_000);
    const acks = await load.acks();
    const summary = await load.stop();
    // Writes accepted again: the end of the pause each lost cell's writes saw around the failover.
    const back = lostCells.map((c) => {
      const gap = writeGap(acks, c, killedAt, movedAt);
      return gap === undefined ? Number.NaN : gap.firstAfterMs - killedAt;
    });
    drill.world.restoreRegion(region);
    await drill.waitStreaming(region, 180_000);
    const audit = await drill.audit(load.ledger);
    acknowledged += audit.checked;
    const round: Round = {
      region,
      cells: lostCells,
      writesBackMs: moved ? Math.max(...back) : Number.NaN,
      failedWrites: (summary?.writes.failed ?? 0) + (summary?.writes.unknownOutcome ?? 0),
      lost: audit.passed ? 0 : audit.lost + audit.mismatched + audit.unverified,
    };
    results.push(round);
    process.stdout.write(
      `round ${i + 1}/${args.rounds}: ${region} killed (${lostCells.join(", ")}): writes accepted again after ${seconds(round.writesBackMs)}, ${round.failedWrites} writes failed or unknown, ${round.lost} of ${audit.checked} acknowledged writes lost\n`,
    );
  }
  await drill.stop();
  const times = results.map((r) => r.writesBackMs);
  const median = percentile(times, 0.5);
  const max = Math.max(...times.map((t) => (Number.isNaN(t) ? Number.POSITIVE_INFINITY : t)));
  const lost = results.reduce((s, r) => s + r.lost, 0);
  process.stdout.write(
    `\n${results.length} region losses, ${acknowledged} writes acknowledged\n` +
      `time to writes accepted: median ${seconds(median)} (goal <= 5 s), max ${seconds(max)} (goal <= 10 s)\n` +
      `writes failed or unknown per round (all cells, load through the surviving routers): median ${percentile(
        results.map((r) => r.failedWrites),
        0.5,
      )}, max ${Math.max(...results.map((r) => r.failedWrites))}\n` +
      `acknowledged writes lost: ${lost} (must be 0, ringfence audit)\n`,
  );
  return lost === 0 && max <= 10_000 && median <= 5_000;
});
