/**
 * A small real world for tests (3 regions, 2 cells, one demo instance per cell and region), started
 * in a temporary folder the postgres user can reach and removed afterwards, with the helpers tests
 * use against it: routers, tenants per cell, writes, the controller, waiting.
 */
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { RINGFENCE_BIN } from "../cli/paths.js";
import type { CellState } from "./contracts.js";
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
