/**
 * When a starting world counts as ready: every region's router gets an answer from an instance of
 * every cell. A probe tenant per cell reaches each cell through the routers; `until` polls a check
 * with a deadline and fails with `RINGFENCE_WORLD_START_FAILED`, naming what was not ready.
 */
import { RingfenceError } from "../lib/errors.js";
import type { Topology } from "../topology/model.js";
import { defaultBucketTable, tenantBucket } from "../topology/placement.js";
import type { Layout } from "./layout.js";

/** One tenant id per cell (under the default bucket table) for readiness probes. */
export function probeTenants(topology: Topology): { cell: string; tenant: string }[] {
  const table = defaultBucketTable(topology.cells.buckets, topology.cells.count);
  const found = new Map<number, string>();
  for (let i = 0; found.size < topology.cells.count && i < 1_000_000; i++) {
    const tenant = `probe-${i}`;
    const cell = table[tenantBucket(tenant, table.length)] as number;
    if (!found.has(cell)) found.set(cell, tenant);
  }
  return [...found].sort((a, b) => a[0] - b[0]).map(([cell, tenant]) => ({ cell: `cell-${cell}`, tenant }));
}

/**
 * Polls `check` every `everyMs` (default 200 ms) until it is true; a throw counts as not yet. Fails
 * with `RINGFENCE_WORLD_START_FAILED` and the message `why()` after `timeoutMs`.
 */
export async function until(
  check: () => Promise<boolean>,
  timeoutMs: number,
  why: () => string,
  everyMs = 200,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (true) {
    try {
      if (await check()) return;
    } catch {
      // not yet
    }
    if (Date.now() > deadline) throw new RingfenceError("RINGFENCE_WORLD_START_FAILED", why());
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export interface ServingOptions {
  readonly timeoutMs: number;
  /** The folder of the world's logs, named when it is not ready in time. */
  readonly logs: string;
  readonly progress: (line: string) => void;
}

/**
 * Waits until every region's router gets an answer from an instance of every cell, reporting each
 * change in how many (region, cell) pairs answer.
 */
export async function waitUntilServing(
  layout: Layout,
  topology: Topology,
  options: ServingOptions,
): Promise<void> {
  const probes = probeTenants(topology);
  const pending = new Set(layout.regions.flatMap((r) => probes.map((p) => `${r.name}|${p.cell}`)));
  const total = pending.size;
  let reported = -1;
  await until(
    async () => {
      await Promise.all(
        [...pending].map(async (key) => {
          const [regionName, cell] = key.split("|") as [string, string];
          const region = layout.regions.find((r) => r.name === regionName);
          const tenant = probes.find((p) => p.cell === cell)?.tenant;
          if (!region || !tenant) return;
          try {
            const res = await fetch(
              `http://${region.router.host}:${region.router.port}/users/ringfence-probe`,
              {
                headers: { "x-tenant": tenant },
                signal: AbortSignal.timeout(2_000),
              },
            );
            await res.arrayBuffer();
            if (res.headers.get("x-ringfence-served-by") && res.status < 500) pending.delete(key);
          } catch {
            // not yet
          }
        }),
      );
      const ready = total - pending.size;
      if (ready !== reported) {
        reported = ready;
        options.progress(`serving: ${ready}/${total} (region, cell) pairs answer through their router`);
      }
      return pending.size === 0;
    },
    options.timeoutMs,
    () => `not serving yet: ${[...pending].join(", ")} (see the logs in ${options.logs})`,
    500,
  );
}
