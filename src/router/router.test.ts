/**
 * The router against real processes: origins are child processes (SIGKILL and SIGSTOP are real),
 * cross-region traffic goes through the WAN emulator, and the router runs in-process.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import fc from "fast-check";
import { parseTopology } from "../topology/load.js";
import { WanEmulator } from "../wan/index.js";
import { encodeBucketTable, type RoutingTable } from "../world/contracts.js";
import { buildLayout, type InstanceSlot, type Layout, wanForwards } from "../world/layout.js";
import { RouterServer } from "./server.js";
import { TableClient } from "./table.js";
import { Telemetry } from "./telemetry.js";

const ORIGIN = join(dirname(fileURLToPath(import.meta.url)), "origin-for-tests.js");
const topology = parseTopology(`
name: router-test
regions:
  - { name: r1, zones: [a, b], latency: { r2: 3ms, r3: 5ms } }
  - { name: r2, zones: [a, b], latency: { r3: 4ms } }
  - { name: r3, zones: [a] }
cells: { count: 1, replicas: 3, buckets: 64 }
routers: { perRegion: 1, tryTimeout: 400ms, deadline: 5s, maxInFlightPerCell: 400, maxAttempts: 3 }
services:
  - name: svc
    command: svc
    instances: 2
    slos:
      - { scenario: read, routes: ["GET /items/:id"], availability: 99.9, latency: 100ms }
      - { scenario: search, routes: ["GET /search/:q"], availability: 99.9, latency: 100ms, hedge: true }
      - { scenario: write, routes: ["PUT /items/:id"], availability: 99.9, latency: 100ms }
      - { scenario: order, routes: ["POST /orders"], availability: 99.9, latency: 100ms }
    fallback: { command: fb, routes: ["GET /items/:id"], instances: 1 }
`);
const base = 60 + Math.floor(Math.random() * 30);
const layout: Layout = buildLayout(topology, base);
let dir: string;
let wan: WanEmulator;
let table: TableClient;
let router: RouterServer;
let url: string;
const origins = new Map<string, ChildProcess>();

async function startOrigin(slot: InstanceSlot): Promise<void> {
  const old = origins.get(slot.id);
  if (old && old.exitCode === null && old.signalCode === null) await new Promise((r) => old.once("exit", r));
  const child = spawn(process.execPath, [ORIGIN, slot.host, String(slot.port), slot.id], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  origins.set(slot.id, child);
  return new Promise((resolve, reject) => {
    child.stdout?.once("data", () => resolve());
    child.once("exit", (code) => reject(new Error(`origin ${slot.id} exited ${code}`)));
  });
}

function routingTable(change: Partial<RoutingTable> = {}): RoutingTable {
  return {
    version: Date.now(),
    generatedAt: new Date().toISOString(),
    buckets: 64,
    bucketTable: encodeBucketTable(new Uint32Array(64)),
    cells: [{ cell: "cell-0", primary: "r1", epoch: 1, fenced: false }],
    health: Object.fromEntries(layout.instances.map((i) => [i.id, "healthy" as const])),
    drains: [],
    ...change,
  };
}

const slotsIn = (region: string, kind: InstanceSlot["kind"] = "service") =>
  layout.instances.filter((i) => i.region === region && i.kind === kind);

async function control(slot: InstanceSlot, change: Record<string, unknown>): Promise<void> {
  await fetch(`http://${slot.host}:${slot.port}/_origin`, { method: "POST", body: JSON.stringify(change) });
}

async function originStats(slot: InstanceSlot): Promise<{ requests: number; retriesPeak: number }> {
  return (await (await fetch(`http://${slot.host}:${slot.port}/_origin`)).json()) as {
    requests: number;
    retriesPeak: number;
  };
}

async function get(path: string, headers: Record<string, string> = { "x-tenant": "acme" }) {
  const res = await fetch(`${url}${path}`, { headers });
  const text = await res.text();
  return {
    status: res.status,
    servedBy: res.headers.get("x-ringfence-served-by") ?? "",
    text,
    headers: res.headers,
  };
}

/** Runs `workers` loops of GET requests until `stop()`; returns every status seen. */
const failures: string[] = [];
function load(
  workers: number,
  path = "/items/1",
): { stop: () => Promise<{ statuses: number[]; servedBy: string[] }> } {
  let running = true;
  const statuses: number[] = [];
  const servedBy: string[] = [];
  const loops = Array.from({ length: workers }, async () => {
    while (running) {
      const r = await get(path).catch(() => ({ status: 0, servedBy: "", text: "" }));
      statuses.push(r.status);
      if (r.status !== 200 && failures.length < 5) failures.push(r.text);
      servedBy.push(r.servedBy);
    }
  });
  return {
    stop: async () => {
      running = false;
      await Promise.all(loops);
      return { statuses, servedBy };
    },
  };
}

const waitFor = async (check: () => Promise<boolean> | boolean, timeoutMs: number, what: string) => {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
};

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "ringfence-router-"));
  await Promise.all(layout.instances.map(startOrigin));
  wan = new WanEmulator();
  wan.addLink("r1", "r2", 3);
  wan.addLink("r1", "r3", 5);
  wan.addLink("r2", "r3", 4);
  const instanceTargets = new Set(layout.instances.map((i) => i.port));
  for (const f of wanForwards(layout)) {
    if (!instanceTargets.has(f.target.port)) continue;
    await wan.addForward({
      link: wan.link(f.from, f.to),
      listenHost: f.listen.host,
      listenPort: f.listen.port,
      targetHost: f.target.host,
      targetPort: f.target.port,
    });
  }
  table = new TableClient({ controllerUrl: "http://127.0.0.1:1", token: "t", file: join(dir, "table.json") });
  table.apply(routingTable());
  router = new RouterServer({
    region: "r1",
    topology,
    layout,
    table,
    telemetry: new Telemetry({ router: "r1" }),
    headersTimeoutMs: 500,
    outlier: { baseEjectionMs: 1_000, maxEjectionMs: 2_000 },
  });
  const bound = await router.listen({ host: layout.regions[0]?.router.host ?? "127.0.0.1", port: 0 });
  url = `http://${bound.host}:${bound.port}`;
});

after(async () => {
  await router?.close();
  await wan?.close();
  for (const child of origins.values()) {
    child.kill("SIGCONT");
    child.kill("SIGKILL");
  }
  rmSync(dir, { recursive: true, force: true });
});

test("routes a tenant to its cell, in the router's own region first", async () => {
  const r = await get("/items/7");
  assert.equal(r.status, 200);
  assert.match(r.servedBy, /^svc\/cell-0\/r1\//);
  assert.equal(r.headers.get("x-ringfence-cell"), "cell-0");
});

test("SIGKILL of one instance under steady load: zero failed idempotent requests", async () => {
  const run = load(16);
  await new Promise((r) => setTimeout(r, 400));
  const victim = slotsIn("r1")[0] as InstanceSlot;
  origins.get(victim.id)?.kill("SIGKILL");
  await new Promise((r) => setTimeout(r, 1_200));
  try {
    const { statuses } = await run.stop();
    assert.ok(statuses.length > 100, `only ${statuses.length} requests`);
    assert.deepEqual([...new Set(statuses)], [200], `a request failed: ${JSON.stringify(tally(statuses))}`);
  } finally {
    await startOrigin(victim);
  }
});

test("SIGKILL of every instance of the cell in the router's region: served from the next region, then back", async () => {
  const run = load(8);
  await new Promise((r) => setTimeout(r, 300));
  for (const slot of slotsIn("r1")) origins.get(slot.id)?.kill("SIGKILL");
  await new Promise((r) => setTimeout(r, 1_000));
  const during = await run.stop();
  try {
    assert.deepEqual(
      [...new Set(during.statuses)],
      [200],
      `a request failed: ${JSON.stringify(tally(during.statuses))} ${failures.join(" | ")}`,
    );
    assert.ok(
      during.servedBy.slice(-20).every((s) => s.includes("/r2/")),
      "served by the nearest other region",
    );
  } finally {
    await Promise.all(slotsIn("r1").map(startOrigin));
  }
  await waitFor(
    async () => (await get("/items/9")).servedBy.includes("/r1/"),
    10_000,
    "the router's own region to be used again",
  );
});

test("SIGSTOP of one instance: its requests time out once, are retried elsewhere, it is ejected, none fail", async () => {
  const victim = slotsIn("r1")[1] as InstanceSlot;
  origins.get(victim.id)?.kill("SIGSTOP");
  try {
    const run = load(4);
    const t0 = Date.now();
    await waitFor(
      () => (router.health().ejected as string[]).includes(victim.id),
      15_000,
      `the hung instance to be ejected (${JSON.stringify(router.health())}) ${Date.now() - t0}`,
    ).catch(async (e) => {
      const { statuses } = await run.stop();
      throw new Error(
        `${(e as Error).message} statuses=${JSON.stringify(tally(statuses))} now=${JSON.stringify(router.health())} victim=${JSON.stringify(router.inspect(victim.id))}`,
      );
    });
    const { statuses } = await run.stop();
    assert.deepEqual([...new Set(statuses)], [200], `a request failed: ${JSON.stringify(tally(statuses))}`);
  } finally {
    origins.get(victim.id)?.kill("SIGCONT");
  }
});

test("with every instance failing, retries stay within the retry budget", async () => {
  // A router of its own, so that no earlier traffic has built up budget.
  const fresh = new RouterServer({
    region: "r1",
    topology,
    layout,
    table,
    telemetry: new Telemetry({ router: "r1" }),
  });
  const bound = await fresh.listen({ host: "127.0.0.1", port: 0 });
  const all = layout.instances.filter((i) => i.kind === "service");
  await Promise.all(all.map((s) => control(s, { status: 503, reset: true })));
  try {
    const requests = 300;
    const statuses: number[] = [];
    let next = 0;
    await Promise.all(
      Array.from({ length: 50 }, async () => {
        while (next++ < requests) {
          const res = await fetch(`http://${bound.host}:${bound.port}/items/3`, {
            headers: { "x-tenant": "acme" },
          });
          await res.arrayBuffer();
          statuses.push(res.status);
        }
      }),
    );
    const attempts = (await Promise.all(all.map(originStats))).reduce((n, s) => n + s.requests, 0);
    assert.ok(statuses.every((s) => s === 503));
    // Without a budget every request would make 3 attempts (900); the budget allows
    // max(3, 20% of requests) retries over its window.
    assert.ok(
      attempts <= requests + Math.max(3, requests * 0.2),
      `${attempts} upstream attempts for ${requests} requests`,
    );
    assert.ok((fresh.health().retryBudget as { denied: number }).denied > 0, "the budget denied retries");
  } finally {
    await Promise.all(all.map((s) => control(s, { status: 200 })));
    await fresh.close();
  }
});

test("hedging: a slow read is sent to another region after the route's p95, the faster answer wins", async () => {
  for (let i = 0; i < 40; i++) assert.equal((await get(`/search/${i}`)).status, 200); // learn the p95
  // r1 answers slowly but within the try timeout (400 ms): without a hedge r1's answer would be the
  // one returned, and no retry would be made, so an answer from another region can only be the hedge's.
  const r1 = slotsIn("r1");
  await Promise.all(r1.map((s) => control(s, { delayMs: 300 })));
  try {
    const before = await Promise.all(r1.map(originStats));
    const r = await get("/search/hedged");
    const after = await Promise.all(r1.map(originStats));
    assert.equal(r.status, 200);
    assert.ok(
      after.some((a, i) => a.requests > (before[i]?.requests ?? 0)),
      "the first try went to r1 (own region first)",
    );
    assert.doesNotMatch(r.servedBy, /\/r1\//, "answered by the hedge to another region, not by slow r1");
  } finally {
    await Promise.all(r1.map((s) => control(s, { delayMs: 0 })));
  }
});

test("fallback: with no healthy instance anywhere, reads go to the fallback and writes get 503 with Retry-After", async () => {
  const health = Object.fromEntries(
    layout.instances.map((i) => [i.id, i.kind === "service" ? ("unhealthy" as const) : ("healthy" as const)]),
  );
  table.apply(routingTable({ health }));
  try {
    const read = await get("/items/5");
    assert.equal(read.status, 200);
    assert.match(read.servedBy, /^svc-fallback\//);
    const write = await fetch(`${url}/items/5`, {
      method: "PUT",
      headers: { "x-tenant": "acme" },
      body: "{}",
    });
    assert.equal(write.status, 503);
    assert.equal(write.headers.get("retry-after"), "1");
  } finally {
    table.apply(routingTable());
  }
});

test("a drained region gets no traffic", async () => {
  table.apply(
    routingTable({
      drains: [
        {
          id: "drain-1",
          target: { kind: "region", id: "r1" },
          reason: "test",
          createdAt: new Date().toISOString(),
        },
      ],
    }),
  );
  try {
    for (let i = 0; i < 10; i++) assert.doesNotMatch((await get(`/items/${i}`)).servedBy, /\/r1\//);
  } finally {
    table.apply(routingTable());
  }
});

test("load shedding: past the in-flight bound a cell gets a fast 503, not a queue", async () => {
  const small = new RouterServer({
    region: "r1",
    topology: parseTopology(
      JSON.stringify({
        ...JSON.parse(JSON.stringify(rawTopology())),
        routers: { perRegion: 1, maxInFlightPerCell: 4 },
      }),
    ),
    layout,
    table,
    telemetry: new Telemetry({ router: "r1" }),
  });
  const bound = await small.listen({ host: "127.0.0.1", port: 0 });
  await Promise.all(slotsIn("r1").map((s) => control(s, { delayMs: 300 })));
  try {
    const all = layout.instances.filter((i) => i.kind === "service");
    const before = await Promise.all(all.map(originStats));
    const results = await Promise.all(
      Array.from({ length: 12 }, async () => {
        const res = await fetch(`http://${bound.host}:${bound.port}/items/1`, {
          headers: { "x-tenant": "acme" },
        });
        const body = (await res.json()) as { error?: { code: string } };
        return { status: res.status, code: body.error?.code };
      }),
    );
    const shed = results.filter((r) => r.code === "RINGFENCE_SHED");
    assert.ok(shed.length >= 8, `${shed.length} shed`);
    assert.ok(
      shed.every((r) => r.status === 503),
      "shed requests are answered 503",
    );
    // Shed requests never reach an upstream: the router answers them itself.
    const after = await Promise.all(all.map(originStats));
    const reached = after.reduce((n, a, i) => n + a.requests - (before[i]?.requests ?? 0), 0);
    assert.ok(
      reached <= results.length - shed.length,
      `${reached} requests reached upstreams, ${shed.length} shed`,
    );
  } finally {
    await Promise.all(slotsIn("r1").map((s) => control(s, { delayMs: 0 })));
    await small.close();
  }
});

test("bad input is rejected with the right status and no crash", async () => {
  assert.equal((await get("/items/1", {})).status, 400, "missing tenant");
  const invalid = await get("/items/1", { "x-tenant": "bad tenant!" });
  assert.equal(invalid.status, 400);
  assert.match(invalid.text, /X-Tenant|x-tenant/);
  const big = await fetch(`${url}/items/1`, {
    headers: { "x-tenant": "acme", "x-big": "a".repeat(20_000) },
  }).catch(() => undefined);
  assert.equal(big?.status, 431);
  const body = await fetch(`${url}/items/1`, {
    method: "PUT",
    headers: { "x-tenant": "acme" },
    body: "x".repeat(2 * 1024 * 1024),
  });
  assert.equal(body.status, 413);
  // A slow client that never finishes its headers is cut off.
  const closed = await new Promise<string>((resolve) => {
    const s = connect(new URL(url).port ? Number(new URL(url).port) : 80, new URL(url).hostname, () =>
      s.write("GET /items/1 HTTP/1.1\r\nx-tenant: acme\r\n"),
    );
    let text = "";
    s.on("data", (d) => {
      text += d.toString();
    });
    s.on("close", () => resolve(text));
    s.on("error", () => resolve(text));
  });
  assert.match(closed, /408|^$/);
  assert.equal((await get("/items/1")).status, 200, "the router still serves");
  await fc.assert(
    fc.asyncProperty(fc.string({ maxLength: 200 }), async (tenant) => {
      const headers: Record<string, string> = {};
      try {
        headers["x-tenant"] = tenant;
        new Headers(headers); // skip values fetch itself refuses to send
      } catch {
        return;
      }
      const r = await get("/items/1", headers);
      assert.ok([200, 400].includes(r.status), `tenant ${JSON.stringify(tenant)} got ${r.status}`);
    }),
    { numRuns: 60 },
  );
});

test("static stability: without the controller the last-known-good table is used, persisted, and dropped after its TTL", async () => {
  let now = Date.now();
  const file = join(dir, "lkg.json");
  const first = new TableClient({
    controllerUrl: "http://127.0.0.1:1",
    token: "t",
    file,
    lastKnownGoodTtlMs: 60_000,
    now: () => now,
  });
  first.apply(routingTable());
  assert.ok(first.current());
  now += 59_000;
  assert.ok(first.current(), "kept within the TTL");
  now += 2_000;
  assert.equal(first.current(), undefined, "dropped after the TTL");
  // A restarted router comes up from the persisted table alone (the controller is unreachable).
  now = Date.now();
  const restarted = new TableClient({
    controllerUrl: "http://127.0.0.1:1",
    token: "t",
    file,
    lastKnownGoodTtlMs: 3_600_000,
    now: () => now,
  });
  await restarted.start();
  try {
    assert.ok(restarted.current(), "loaded from disk");
    assert.equal(restarted.stale, true);
    const r2 = new RouterServer({
      region: "r1",
      topology,
      layout,
      table: restarted,
      telemetry: new Telemetry({ router: "r1" }),
    });
    const bound = await r2.listen({ host: "127.0.0.1", port: 0 });
    try {
      const res = await fetch(`http://${bound.host}:${bound.port}/items/1`, {
        headers: { "x-tenant": "acme" },
      });
      assert.equal(res.status, 200);
      const health = (await (await fetch(`http://${bound.host}:${bound.port}/_ringfence/health`)).json()) as {
        status: string;
        table: { stale: boolean };
      };
      assert.equal(health.status, "degraded");
      assert.equal(health.table.stale, true);
    } finally {
      await r2.close();
    }
  } finally {
    await restarted.stop();
  }
});

function rawTopology(): Record<string, unknown> {
  return {
    name: "router-test",
    regions: [
      { name: "r1", zones: ["a", "b"], latency: { r2: "3ms", r3: "5ms" } },
      { name: "r2", zones: ["a", "b"], latency: { r3: "4ms" } },
      { name: "r3", zones: ["a"] },
    ],
    cells: { count: 1, replicas: 3, buckets: 64 },
    services: [
      {
        name: "svc",
        command: "svc",
        instances: 2,
        slos: [
          { scenario: "read", routes: ["GET /items/:id"], availability: 99.9, latency: "100ms" },
          { scenario: "write", routes: ["PUT /items/:id"], availability: 99.9, latency: "100ms" },
        ],
        fallback: { command: "fb", routes: ["GET /items/:id"], instances: 1 },
      },
    ],
  };
}

function tally(statuses: number[]): Record<number, number> {
  const out: Record<number, number> = {};
  for (const s of statuses) out[s] = (out[s] ?? 0) + 1;
  return out;
}
