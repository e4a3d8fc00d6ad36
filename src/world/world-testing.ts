/**
 * A small real world for tests (3 regions, 2 cells, one demo instance per cell and region), started
 * in a temporary folder the postgres user can reach and removed afterwards, with the helpers tests
 * use against it: routers, tenants per cell, writes and a ledger of the acknowledged ones, the
 * controller, the databases, waiting.
 */
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { RINGFENCE_BIN } from "../cli/paths.js";
import { queryOnce } from "../lib/postgres.js";
import type { CellState } from "./contracts.js";
import type { DatabaseSlot, Endpoint } from "./layout.js";
import { probeTenants, World } from "./supervisor.js";

/*
 * A test file that ran a world sometimes never exited: once its tests were done and its event loop
 * empty, node's exit cleanup (Environment::CleanupHandles) spun on a socket handle whose close never
 * completed, at full CPU, forever. The cause was the WAN emulator resetting a socket while its FIN was
 * still being sent (see resetSocket in wan/connection.ts), which is fixed; this stays as a guard
 * against any other such handle. With the loop empty, everything the test runner reports has been
 * written, so leaving through process.exit(), which skips that cleanup, loses nothing.
 */
process.once("beforeExit", (code) => process.exit(code));

export const TEST_TOPOLOGY = `
name: test-world
regions:
  - { name: r1, zones: [a, b], latency: { r2: 4ms, r3: 6ms } }
  - { name: r2, zones: [a, b], latency: { r3: 5ms } }
  - { name: r3, zones: [a] }
cells: { count: 2, replicas: 3, syncQuorum: 1, buckets: 1024 }
routers: { perRegion: 1 }
failover: { failbackAfter: 5s }
services:
  - name: directory
    command: ringfence demo directory
    instances: 1
    slos:
      - { scenario: sign-in, routes: ["POST /tokens"], availability: 99.9, latency: 300ms }
      - { scenario: users, routes: ["GET /users/:id", "PUT /users/:id"], availability: 99.9, latency: 300ms }
`;

export interface TestWorld {
  readonly world: World;
  readonly dir: string;
  readonly addressBase: number;
  /** Replaces the running world by a new one on the same state directory (after a stop). */
  restart(): Promise<void>;
  /** `http://host:port` of a region's router. */
  routerUrl(region: string): string;
  /** A tenant placed on `cell` (under the default bucket table). */
  tenantOf(cell: string): string;
  /** `PUT /users/:id` through a region's router. */
  put(region: string, tenant: string, id: string, signal?: AbortSignal): Promise<PutResult>;
  /** A GET on the controller with the reader token. */
  controller<T>(path: string): Promise<T>;
  /** The cells as the controller has them now (current primaries). */
  cells(): Promise<CellState[]>;
  /** A cell's failover phase (`serving`, `awaiting-consent`, ...), its primary's region and whether it is fenced. */
  phase(cell: string): Promise<{ phase: string; primary: string; fenced: boolean }>;
  stop(): Promise<void>;
}

export interface PutResult {
  readonly status: number;
  readonly lsn: string | null;
  readonly body: Record<string, unknown>;
}

/** Starts a test world; `addressBase` defaults to a random one in 100–199. */
export async function startTestWorld(options: { addressBase?: number } = {}): Promise<TestWorld> {
  const dir = mkdtempSync(join(tmpdir(), "ringfence-world-"));
  // The postgres user must reach the data inside it, or it would go to /var/tmp and outlive the test.
  chmodSync(dir, 0o755);
  writeFileSync(join(dir, "topology.yaml"), TEST_TOPOLOGY);
  const addressBase = options.addressBase ?? 100 + Math.floor(Math.random() * 100);
  const create = (topology?: string) =>
    new World({
      stateDir: join(dir, "state"),
      ...(topology ? { topology } : {}),
      addressBase,
      ringfenceBin: RINGFENCE_BIN,
      readyTimeoutMs: 90_000,
    });
  let world = create(join(dir, "topology.yaml"));
  const cleanUp = async () => {
    await world.stop();
    const pgRoot = world.state.exists() ? world.state.readConfig().pgRoot : undefined;
    rmSync(dir, { recursive: true, force: true });
    if (pgRoot && !pgRoot.startsWith(dir)) rmSync(pgRoot, { recursive: true, force: true });
  };
  try {
    await world.start();
  } catch (err) {
    await cleanUp().catch(() => {});
    throw err;
  }
  const tenants = new Map(probeTenants(world.topology).map((p) => [p.cell, p.tenant]));
  const routerUrl = (region: string) => {
    const r = world.layout.regions.find((x) => x.name === region);
    if (!r) throw new Error(`no region ${region}`);
    return `http://${r.router.host}:${r.router.port}`;
  };
  const controller = async <T>(path: string): Promise<T> => {
    const { host, port } = world.layout.controller;
    const res = await fetch(`http://${host}:${port}${path}`, {
      headers: { authorization: `Bearer ${world.state.tokens().reader}` },
      signal: AbortSignal.timeout(5_000),
    });
    if (!res.ok) throw new Error(`GET ${path}: ${res.status} ${await res.text()}`);
    return (await res.json()) as T;
  };
  return {
    get world() {
      return world;
    },
    dir,
    addressBase,
    async restart() {
      world = create();
      await world.start();
    },
    routerUrl,
    tenantOf: (cell) => {
      const tenant = tenants.get(cell);
      if (!tenant) throw new Error(`no tenant for ${cell}`);
      return tenant;
    },
    async put(region, tenant, id, signal) {
      const res = await fetch(`${routerUrl(region)}/users/${id}`, {
        method: "PUT",
        headers: { "x-tenant": tenant, "content-type": "application/json" },
        body: JSON.stringify({ name: `user ${id}`, email: `${id}@example.com` }),
        ...(signal ? { signal } : {}),
      });
      const body = (await res.json()) as Record<string, unknown>;
      return { status: res.status, lsn: res.headers.get("x-ringfence-commit-lsn"), body };
    },
    controller,
    cells: async () => (await controller<{ cells: CellState[] }>("/v1/state")).cells,
    async phase(cell) {
      const doc = await controller<{
        cells: { cell: { cell: string; primary: string; fenced: boolean }; phase: string }[];
      }>("/v1/failover");
      const c = doc.cells.find((x) => x.cell.cell === cell);
      if (!c) throw new Error(`no cell ${cell} in /v1/failover`);
      return { phase: c.phase, primary: c.cell.primary, fenced: c.cell.fenced };
    },
    stop: cleanUp,
  };
}

/** Polls `check` every 200 ms until it is true; throws naming `what` after `timeoutMs`. */
export async function waitFor(
  check: () => Promise<boolean> | boolean,
  timeoutMs: number,
  what: string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** A write the world acknowledged: to which cell, its id, when it was sent and when acknowledged. */
export interface Ack {
  readonly cell: string;
  readonly id: string;
  readonly sentAtMs: number;
  readonly atMs: number;
}

/** A running {@link startWriter}: what it got so far, and how to stop it. */
export interface LedgerWriter {
  readonly acked: Ack[];
  readonly failures: { cell: string; atMs: number; status: number | string }[];
  /** Stops writing; resolves once every write in flight has been answered. */
  stop(): Promise<void>;
}

/**
 * Writes to both cells through the given regions' routers (in turn) until stopped, each write with a
 * new id `PREFIX-CELL-N`; keeps every acknowledged write.
 */
export function startWriter(tw: TestWorld, regions: readonly string[], prefix: string): LedgerWriter {
  const acked: Ack[] = [];
  const failures: LedgerWriter["failures"] = [];
  let running = true;
  let n = 0;
  const lane = async (cell: string) => {
    while (running) {
      const region = regions[n % regions.length] as string;
      const id = `${prefix}-${cell}-${n++}`;
      const sentAtMs = Date.now();
      try {
        const r = await tw.put(region, tw.tenantOf(cell), id, AbortSignal.timeout(15_000));
        if (r.status === 200) acked.push({ cell, id, sentAtMs, atMs: Date.now() });
        else failures.push({ cell, atMs: Date.now(), status: r.status });
      } catch (err) {
        failures.push({ cell, atMs: Date.now(), status: (err as Error).name });
      }
      await new Promise((r) => setTimeout(r, 25));
    }
  };
  const lanes = Promise.all([lane("cell-0"), lane("cell-1")]);
  return {
    acked,
    failures,
    stop: async () => {
      running = false;
      await lanes;
    },
  };
}

/** The database of `cell` in `region` (whatever its role now). */
export function databaseOf(tw: TestWorld, cell: string, region: string): DatabaseSlot {
  const db = tw.world.layout.databases.find((d) => d.cell === cell && d.region === region);
  if (!db) throw new Error(`no database of ${cell} in ${region}`);
  return db;
}

/** The acknowledged writes of `cell` missing from its database in `region`, queried directly. */
export async function missingIn(
  tw: TestWorld,
  cell: string,
  region: string,
  acked: readonly Ack[],
): Promise<string[]> {
  const db = databaseOf(tw, cell, region);
  const ids = acked.filter((a) => a.cell === cell).map((a) => a.id);
  const rows = await queryOnce<{ id: string }>(db.host, db.port, "SELECT id FROM users WHERE id = ANY($1)", [
    ids,
  ]);
  const found = new Set(rows.map((r) => r.id));
  return ids.filter((id) => !found.has(id));
}

/** The postmaster pid of `cell`'s database in `region`, from its data directory's `postmaster.pid`. */
export function postmasterPid(world: World, cell: string, region: string): number {
  const config = world.state.readConfig();
  const text = readFileSync(join(config.pgRoot, `${cell}-${region}`, "postmaster.pid"), "utf8");
  return Number(text.split("\n")[0]);
}

/** The application names of the standbys streaming from `primary` now; none when it does not answer. */
export async function streamingStandbys(primary: Endpoint): Promise<string[]> {
  const rows = await queryOnce<{ application_name: string }>(
    primary.host,
    primary.port,
    "SELECT application_name FROM pg_stat_replication WHERE state = 'streaming'",
  ).catch(() => []);
  return rows.map((r) => r.application_name);
}

/** Waits until `primary` streams to at least `count` standbys. */
export async function waitForStreaming(primary: Endpoint, count: number, timeoutMs = 60_000): Promise<void> {
  await waitFor(
    async () => (await streamingStandbys(primary)).length >= count,
    timeoutMs,
    `${count} standbys to stream from ${primary.host}:${primary.port}`,
  );
}
