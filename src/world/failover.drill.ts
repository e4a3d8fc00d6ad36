/**
 * `npm run drill:failover [-- --rounds N] [-- --keep]`: region loss, again and again, on the default
 * world, under writes; prints per round the time until writes to the lost cells are accepted again,
 * the requests that failed meanwhile and the acknowledged writes lost (must be 0), then the median
 * and maximum. A drill, not a test: it takes minutes and its figures go to docs/benchmarks.md.
 *
 * Each round: pick the cell whose primary is next in turn, SIGKILL its primary's whole region (its
 * agents with every child, and its router), wait until every cell that lived there serves writes
 * from another region, restore the region, and wait until its databases stream again as standbys.
 * The world is the bundled default topology with `failover.failback: manual`, so that no failback
 * runs in the middle of a round (failback has its own test).
 */
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseDocument } from "yaml";
import { RINGFENCE_BIN } from "../cli/paths.js";
import { queryOnce } from "../lib/postgres.js";
import { PACKAGE_ROOT } from "../topology/load.js";
import type { CellState } from "./contracts.js";
import { probeTenants, World } from "./supervisor.js";

interface Round {
  readonly region: string;
  readonly cells: string[];
  readonly writesBackMs: number;
  readonly failedRequests: number;
  readonly lost: number;
}

const args = process.argv.slice(2);
const rounds = Number(args[args.indexOf("--rounds") + 1] ?? 20) || 20;
const keep = args.includes("--keep");

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "ringfence-drill-"));
  chmodSync(dir, 0o755);
  const topology = parseDocument(readFileSync(join(PACKAGE_ROOT, "topologies", "default.yaml"), "utf8"));
  topology.setIn(["failover", "failback"], "manual");
  writeFileSync(join(dir, "topology.yaml"), topology.toString());
  const world = new World({
    stateDir: join(dir, "state"),
    topology: join(dir, "topology.yaml"),
    addressBase: 60,
    ringfenceBin: RINGFENCE_BIN,
    readyTimeoutMs: 120_000,
    progress: (line) => process.stderr.write(`${line}\n`),
  });
  const results: Round[] = [];
  // Ctrl-C stops the world first: its processes must not outlive the drill.
  let interrupted = false;
  const interrupt = () => {
    if (interrupted) return;
    interrupted = true;
    process.stderr.write("interrupted: stopping the world\n");
    void world.stop().finally(() => process.exit(130));
  };
  process.once("SIGINT", interrupt);
  process.once("SIGTERM", interrupt);
  try {
    await world.start();
    const tenants = new Map(probeTenants(world.topology).map((p) => [p.cell, p.tenant]));
    const controller = async <T>(path: string): Promise<T> => {
      const { host, port } = world.layout.controller;
      const res = await fetch(`http://${host}:${port}${path}`, {
        headers: { authorization: `Bearer ${world.state.tokens().reader}` },
        signal: AbortSignal.timeout(5_000),
      });
      return (await res.json()) as T;
    };
    const cells = async () => (await controller<{ cells: CellState[] }>("/v1/state")).cells;
    const acked: { cell: string; id: string; sentAtMs: number; atMs: number }[] = [];
    let failures: { cell: string; atMs: number }[] = [];
    let down = "";
    let running = true;
    let n = 0;
    const lane = async (cell: string) => {
      const tenant = tenants.get(cell) as string;
      while (running) {
        const routers = world.layout.regions.filter((r) => r.name !== down);
        const router = routers[n % routers.length] as (typeof routers)[number];
        const id = `drill-${cell}-${n++}`;
        const sentAtMs = Date.now();
        try {
          const res = await fetch(`http://${router.router.host}:${router.router.port}/users/${id}`, {
            method: "PUT",
            headers: { "x-tenant": tenant, "content-type": "application/json" },
            body: JSON.stringify({ name: id, email: `${id}@drill.test` }),
            signal: AbortSignal.timeout(15_000),
          });
          await res.arrayBuffer();
          if (res.status === 200) acked.push({ cell, id, sentAtMs, atMs: Date.now() });
          else failures.push({ cell, atMs: Date.now() });
        } catch {
          failures.push({ cell, atMs: Date.now() });
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    const lanes = Promise.all([...tenants.keys()].map((cell) => lane(cell)));
    await new Promise((r) => setTimeout(r, 3_000));
    for (let i = 0; i < rounds; i++) {
      const before = await cells();
      const target = before[i % before.length] as CellState;
      const region = target.primary;
      const lostCells = before.filter((c) => c.primary === region).map((c) => c.cell);
      failures = [];
      const killedAt = Date.now();
      down = region;
      await world.killRegion(region);
      // Writes accepted again: every lost cell has a write acknowledged after the kill and is served elsewhere.
      const deadline = killedAt + 60_000;
      let back = 0;
      while (Date.now() < deadline) {
        const now = await cells().catch(() => []);
        const moved = lostCells.every((c) =>
          now.find((x) => x.cell === c && x.primary !== region && !x.fenced),
        );
        // A write counts only when it was sent after the kill: one in flight then says nothing.
        const writing = lostCells.every((c) => acked.some((a) => a.cell === c && a.sentAtMs > killedAt));
        if (moved && writing) {
          back = Math.max(
            ...lostCells.map(
              (c) => (acked.find((a) => a.cell === c && a.sentAtMs > killedAt)?.atMs ?? 0) - killedAt,
            ),
          );
          break;
        }
        await new Promise((r) => setTimeout(r, 100));
      }
      const failed = failures.filter((f) => lostCells.includes(f.cell)).length;
      world.restoreRegion(region);
      down = "";
      await waitStreaming(world, region, 180_000);
      const lost = await audit(world, await cells(), acked);
      const round: Round = {
        region,
        cells: lostCells,
        writesBackMs: back || Number.NaN,
        failedRequests: failed,
        lost,
      };
      results.push(round);
      process.stdout.write(
        `round ${i + 1}/${rounds}: ${region} killed (${lostCells.join(", ")}): writes accepted again after ${Number.isNaN(round.writesBackMs) ? "NEVER (60 s)" : `${(round.writesBackMs / 1000).toFixed(2)} s`}, ${failed} requests failed, ${lost} acknowledged writes lost\n`,
      );
    }
    running = false;
    await lanes;
    const times = results.map((r) => r.writesBackMs).sort((a, b) => a - b);
    const median = times[Math.floor((times.length - 1) / 2)] ?? Number.NaN;
    const max = times[times.length - 1] ?? Number.NaN;
    const lost = results.reduce((s, r) => s + r.lost, 0);
    process.stdout.write(
      `\n${results.length} region losses, ${acked.length} writes acknowledged\n` +
        `time to writes accepted: median ${(median / 1000).toFixed(2)} s (goal <= 5 s), max ${(max / 1000).toFixed(2)} s (goal <= 10 s)\n` +
        `failed requests per window: median ${medianOf(results.map((r) => r.failedRequests))}, max ${Math.max(...results.map((r) => r.failedRequests))}\n` +
        `acknowledged writes lost: ${lost} (must be 0)\n`,
    );
    if (lost > 0 || !(max <= 10_000) || !(median <= 5_000)) process.exitCode = 1;
  } finally {
    await world.stop();
    if (!keep) {
      const pgRoot = world.state.exists() ? world.state.readConfig().pgRoot : undefined;
      rmSync(dir, { recursive: true, force: true });
      if (pgRoot && !pgRoot.startsWith(dir)) rmSync(pgRoot, { recursive: true, force: true });
    }
  }
}

function medianOf(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor((sorted.length - 1) / 2)] ?? 0;
}

/** Waits until every database of `region` streams from its cell's primary again. */
async function waitStreaming(world: World, region: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const mine = world.layout.databases.filter((d) => d.region === region);
  while (Date.now() < deadline) {
    let ok = 0;
    for (const db of mine) {
      const rows = await queryOnce<{ r: boolean }>(
        db.host,
        db.port,
        "SELECT pg_is_in_recovery() AND EXISTS (SELECT 1 FROM pg_stat_wal_receiver WHERE status = 'streaming') AS r",
      ).catch(() => []);
      if (rows[0]?.r) ok++;
    }
    if (ok === mine.length) return;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`the databases of ${region} did not stream again within ${timeoutMs / 1000} s`);
}

/** Acknowledged writes missing from their cell's current primary. */
async function audit(
  world: World,
  cells: CellState[],
  acked: { cell: string; id: string }[],
): Promise<number> {
  let missing = 0;
  for (const c of cells) {
    const db = world.layout.databases.find((d) => d.cell === c.cell && d.region === c.primary);
    if (!db) continue;
    const ids = acked.filter((a) => a.cell === c.cell).map((a) => a.id);
    const rows = await queryOnce<{ id: string }>(
      db.host,
      db.port,
      "SELECT id FROM users WHERE id = ANY($1)",
      [ids],
    );
    missing += ids.length - rows.length;
  }
  return missing;
}

main().catch((err: Error) => {
  process.stderr.write(`drill failed: ${err.stack ?? err.message}\n`);
  process.exit(2);
});
