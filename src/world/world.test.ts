/**
 * The local world against real processes: PostgreSQL cells committing out of region, agents,
 * routers, the WAN emulator and the demo service. One small world for the whole file.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { RINGFENCE_BIN } from "../cli/world.js";
import { queryOnce } from "../lib/postgres.js";
import { signalTree } from "../lib/proctree.js";
import { probeTenants, World } from "./supervisor.js";

const TOPOLOGY = `
name: test-world
regions:
  - { name: r1, zones: [a, b], latency: { r2: 4ms, r3: 6ms } }
  - { name: r2, zones: [a, b], latency: { r3: 5ms } }
  - { name: r3, zones: [a] }
cells: { count: 2, replicas: 3, syncQuorum: 1, buckets: 1024 }
routers: { perRegion: 1 }
services:
  - name: directory
    command: ringfence demo directory
    instances: 1
    slos:
      - { scenario: sign-in, routes: ["POST /tokens"], availability: 99.9, latency: 300ms }
      - { scenario: users, routes: ["GET /users/:id", "PUT /users/:id"], availability: 99.9, latency: 300ms }
`;

let dir: string;
let world: World;
const addressBase = 100 + Math.floor(Math.random() * 100);

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "ringfence-world-"));
  writeFileSync(join(dir, "topology.yaml"), TOPOLOGY);
  world = new World({
    stateDir: join(dir, "state"),
    topology: join(dir, "topology.yaml"),
    addressBase,
    ringfenceBin: RINGFENCE_BIN,
    readyTimeoutMs: 90_000,
  });
  await world.start();
});

after(async () => {
  await world?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const routerUrl = (region: string) => {
  const r = world.layout.regions.find((x) => x.name === region);
  if (!r) throw new Error(region);
  return `http://${r.router.host}:${r.router.port}`;
};
const tenantOf = (cell: string) =>
  probeTenants(world.topology).find((p) => p.cell === cell)?.tenant as string;

async function put(region: string, tenant: string, id: string, signal?: AbortSignal) {
  const res = await fetch(`${routerUrl(region)}/users/${id}`, {
    method: "PUT",
    headers: { "x-tenant": tenant, "content-type": "application/json" },
    body: JSON.stringify({ name: `user ${id}`, email: `${id}@example.com` }),
    ...(signal ? { signal } : {}),
  });
  const body = (await res.json()) as Record<string, unknown>;
  return { status: res.status, lsn: res.headers.get("x-ringfence-commit-lsn"), body };
}

/** The data directory's postmaster pid of a cell's database in a region. */
function postmasterPid(cell: string, region: string): number {
  const config = world.state.readConfig();
  const text = readFileSync(join(config.pgRoot, `${cell}-${region}`, "postmaster.pid"), "utf8");
  return Number(text.split("\n")[0]);
}

function primaryOf(cell: string): { host: string; port: number; region: string } {
  const home = world.topology.cells.list.find((c) => c.id === cell)?.home as string;
  const db = world.layout.databases.find((d) => d.cell === cell && d.region === home);
  if (!db) throw new Error(cell);
  return { host: db.host, port: db.port, region: home };
}

test("a write acknowledged in one region is read back through every other region's router", async () => {
  for (const cell of ["cell-0", "cell-1"]) {
    const tenant = tenantOf(cell);
    const w = await put("r1", tenant, `read-back-${cell}`);
    assert.equal(w.status, 200, JSON.stringify(w.body));
    assert.ok(w.lsn, "the write returns its commit LSN");
    for (const region of ["r2", "r3"]) {
      const res = await fetch(`${routerUrl(region)}/users/read-back-${cell}`, {
        headers: { "x-tenant": tenant, "x-ringfence-min-lsn": w.lsn ?? "" },
      });
      const body = (await res.json()) as { user?: { email?: string } };
      assert.equal(res.status, 200, `${region}: ${JSON.stringify(body)}`);
      assert.equal(body.user?.email, `read-back-${cell}@example.com`);
      assert.equal(res.headers.get("x-ringfence-cell"), cell);
    }
  }
});

test("a write is acknowledged only after an out-of-region standby flushed it", async () => {
  const cell = "cell-0";
  const primary = primaryOf(cell);
  const standbys = world.layout.databases.filter((d) => d.cell === cell && d.region !== primary.region);
  const pids = standbys.map((s) => postmasterPid(cell, s.region));
  for (const pid of pids) signalTree(pid, "SIGSTOP");
  let resumed = false;
  try {
    let settled = false;
    const write = put("r1", tenantOf(cell), "needs-a-standby").then((r) => {
      settled = true;
      return r;
    });
    await new Promise((r) => setTimeout(r, 5_000));
    assert.equal(settled, false, "the write was acknowledged while every out-of-region standby was paused");
    signalTree(pids[0] as number, "SIGCONT");
    resumed = true;
    const result = await write;
    assert.equal(result.status, 200, JSON.stringify(result.body));
  } finally {
    for (const pid of pids) signalTree(pid, "SIGCONT");
  }
  assert.ok(resumed);
  const rows = await queryOnce(
    primary.host,
    primary.port,
    "SELECT id FROM users WHERE id = 'needs-a-standby'",
  );
  assert.equal(rows.length, 1);
});

/** Writes continuously through the routers, keeping a ledger of every acknowledged write. */
function startWriter(): { stop: () => Promise<{ acked: { cell: string; id: string }[]; failed: number }> } {
  const acked: { cell: string; id: string }[] = [];
  let failed = 0;
  let running = true;
  let n = 0;
  const loop = (async () => {
    while (running) {
      const cell = n % 2 === 0 ? "cell-0" : "cell-1";
      const region = ["r1", "r2", "r3"][n % 3] as string;
      const id = `ledger-${n++}`;
      try {
        const r = await put(region, tenantOf(cell), id, AbortSignal.timeout(20_000));
        if (r.status === 200) acked.push({ cell, id });
        else failed++;
      } catch {
        failed++;
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      return { acked, failed };
    },
  };
}

/** Every acknowledged write is on its cell's primary. */
async function audit(acked: { cell: string; id: string }[]): Promise<string[]> {
  const missing: string[] = [];
  for (const cell of ["cell-0", "cell-1"]) {
    const p = primaryOf(cell);
    const ids = acked.filter((a) => a.cell === cell).map((a) => a.id);
    const rows = await queryOnce<{ id: string }>(p.host, p.port, "SELECT id FROM users WHERE id = ANY($1)", [
      ids,
    ]);
    const found = new Set(rows.map((r) => r.id));
    missing.push(...ids.filter((id) => !found.has(id)));
  }
  return missing;
}

async function waitFor(
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

async function statusDoc(): Promise<Record<string, unknown>> {
  const res = await fetch(
    `http://${world.layout.controller.host}:${world.layout.controller.port}/v1/status`,
    {
      headers: { authorization: `Bearer ${world.state.tokens().reader}` },
    },
  );
  return (await res.json()) as Record<string, unknown>;
}

test("SIGKILL of a service instance, an agent and a standby loses no acknowledged write, and the world heals", async () => {
  const writer = startWriter();
  try {
    // A service instance: its agent restarts it.
    const instance = world.layout.instances.find((i) => i.cell === "cell-0" && i.region === "r1");
    assert.ok(instance);
    const agentDir = world.state.agentDir(instance.zone);
    const instancePid = async () => {
      const pids = JSON.parse(readFileSync(join(agentDir, "pids.json"), "utf8")) as number[];
      const res = await fetch(`http://${instance.host}:${instance.port}/healthz`).catch(() => undefined);
      return res?.ok ? pids : [];
    };
    const before = await instancePid();
    assert.ok(before.length > 0);
    for (const pid of before) process.kill(pid, "SIGKILL");
    await waitFor(
      async () => {
        const now = await instancePid();
        return now.length > 0 && now.every((p) => !before.includes(p));
      },
      30_000,
      "the instance to be restarted",
    );

    // A standby: its agent restarts it and it re-streams.
    const cell = "cell-1";
    const primary = primaryOf(cell);
    const standby = world.layout.databases.find((d) => d.cell === cell && d.region !== primary.region);
    assert.ok(standby);
    const standbyPid = postmasterPid(cell, standby.region);
    process.kill(standbyPid, "SIGKILL");
    await waitFor(
      async () => {
        const rows = await queryOnce<{ application_name: string }>(
          primary.host,
          primary.port,
          "SELECT application_name FROM pg_stat_replication WHERE state = 'streaming'",
        ).catch(() => []);
        return (
          rows.some((r) => r.application_name === standby.applicationName) &&
          postmasterPid(cell, standby.region) !== standbyPid
        );
      },
      60_000,
      "the standby to re-stream",
    );

    // An agent: the supervisor restarts it; the new agent clears what the old one left behind and
    // runs its zone again (its instance answers health checks with a new pid).
    const agentPid = world.pid("agent:r2/a");
    assert.ok(agentPid);
    const zoneInstance = world.layout.instances.find((i) => i.zone === "r2/a");
    assert.ok(zoneInstance);
    process.kill(agentPid, "SIGKILL");
    await waitFor(
      () => {
        const pid = world.pid("agent:r2/a");
        return pid !== null && pid !== agentPid;
      },
      30_000,
      "the agent to be restarted",
    );
    await waitFor(
      async () => {
        const res = await fetch(`http://${zoneInstance.host}:${zoneInstance.port}/healthz`).catch(
          () => undefined,
        );
        return res?.ok === true;
      },
      60_000,
      "the restarted agent's instance to serve",
    );
  } finally {
    const { acked, failed } = await writer.stop();
    assert.ok(acked.length > 20, `only ${acked.length} writes acknowledged (${failed} failed)`);
    assert.deepEqual(await audit(acked), [], "acknowledged writes missing from their primary");
  }
  const status = await statusDoc();
  assert.ok(JSON.stringify(status).includes("restart"), "status shows what happened");
});
