import assert from "node:assert/strict";
import { request as httpRequest } from "node:http";
import { connect, createServer, type Server, type Socket } from "node:net";
import { after, before, test } from "node:test";
import { freePort } from "../lib/ports.js";
import { queryOnce } from "../lib/postgres.js";
import { startTestCluster, type TestCluster } from "../lib/postgres-testing.js";
import { sampleTopology } from "../topology/testing.js";
import type { WorldEvent } from "../world/contracts.js";
import { buildLayout } from "../world/layout.js";
import { MIGRATIONS } from "./migrations.js";
import { type Controller, type ControllerOptions, startController } from "./server.js";
import { TEST_TOKENS } from "./testing.js";

/** A hung test fails alone, and `after` still stops PostgreSQL. */
const LIMIT = { timeout: 30_000 };
const topology = sampleTopology();
const layout = buildLayout(topology, 202);

let cluster: TestCluster | undefined;
const cleanups: (() => Promise<void>)[] = [];

before(async () => {
  cluster = await startTestCluster();
});

after(async () => {
  try {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {});
  } finally {
    await cluster?.stop();
  }
});

function options(database: ControllerOptions["database"]): ControllerOptions {
  return { topology, layout, tokens: TEST_TOKENS, database, host: "127.0.0.1", port: 0 };
}

async function start(database: ControllerOptions["database"]): Promise<Controller> {
  const controller = await startController(options(database));
  cleanups.push(() => controller.close());
  return controller;
}

async function get(controller: Controller, url: string) {
  const res = await controller.app.inject({
    method: "GET",
    url,
    headers: { authorization: `Bearer ${TEST_TOKENS.operator}` },
  });
  return { status: res.statusCode, headers: res.headers, body: res.json() };
}

/** Opens an event stream; once it is flowing, resolves to a promise of its end. */
async function openStream(controller: Controller): Promise<{ ended: Promise<void> }> {
  return await new Promise((resolve, reject) => {
    const req = httpRequest(
      `${controller.url}/v1/events/stream`,
      { agent: false, headers: { authorization: `Bearer ${TEST_TOKENS.reader}` } },
      (res) => {
        const end = new Promise<void>((done) => res.on("end", done).on("close", done));
        res.once("data", () => resolve({ ended: end }));
        res.resume();
      },
    );
    req.on("error", reject);
    req.end();
  });
}

async function createDatabase(name: string): Promise<{ host: string; port: number; database: string }> {
  assert.ok(cluster);
  await queryOnce(cluster.primary.host, cluster.primary.port, `CREATE DATABASE ${name}`);
  return { host: cluster.primary.host, port: cluster.primary.port, database: name };
}

test("state survives a controller restart on the same database", LIMIT, async () => {
  const database = await createDatabase("survives");
  const first = await start(database);
  const fence = await first.app.inject({
    method: "POST",
    url: "/v1/cells/cell-1/fence",
    headers: { authorization: `Bearer ${TEST_TOKENS.operator}` },
    payload: { reason: "before restart" },
  });
  assert.equal(fence.statusCode, 200);
  const version = (await get(first, "/v1/state")).body.desiredVersion as number;
  // An open event stream does not keep the controller from closing: it is ended.
  const stream = await openStream(first);
  await first.close();
  await stream.ended;

  const second = await start(database);
  const state = (await get(second, "/v1/state")).body;
  assert.equal(state.cells.find((c: { cell: string }) => c.cell === "cell-1").fenced, true);
  assert.equal(state.desiredVersion, version);
  const events = (await get(second, "/v1/events?limit=1000")).body.events as WorldEvent[];
  assert.deepEqual(
    events.map((e) => e.kind),
    ["world.initialised", "cell.fenced", "controller.started"],
  );
});

test("two controllers starting at once on a fresh database initialise the world once", LIMIT, async () => {
  const database = await createDatabase("racing");
  const [a] = await Promise.all([start(database), start(database)]);
  const kinds = ((await get(a, "/v1/events")).body.events as WorldEvent[]).map((e) => e.kind).sort();
  assert.deepEqual(kinds, ["controller.started", "world.initialised"]);
  const migrations = await queryOnce(
    database.host,
    database.port,
    "SELECT version FROM schema_migrations",
    [],
    "racing",
  );
  assert.equal(migrations.length, MIGRATIONS.length);
});

test("starting without a control database fails with RINGFENCE_CONTROL_DB_UNAVAILABLE", LIMIT, async () => {
  await assert.rejects(
    startController(options({ host: "127.0.0.1", port: await freePort() })),
    (err: Error & { code?: string }) =>
      err.code === "RINGFENCE_CONTROL_DB_UNAVAILABLE" && /127\.0\.0\.1/.test(err.message),
  );
});

/** A TCP proxy to the database that can cut every connection and refuse new ones, then recover. */
async function startProxy(target: { host: string; port: number }) {
  const sockets = new Set<Socket>();
  let down = false;
  const server: Server = createServer((client) => {
    if (down) {
      client.destroy();
      return;
    }
    const upstream = connect(target.port, target.host);
    sockets.add(client);
    sockets.add(upstream);
    const drop = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on("error", drop).on("close", drop);
    upstream.on("error", drop).on("close", drop);
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  return {
    port,
    cut(): void {
      down = true;
      for (const s of sockets) s.destroy();
      sockets.clear();
    },
    restore(): void {
      down = false;
    },
    async close(): Promise<void> {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

test(
  "the controller answers 503 while the control database is away and recovers when it returns",
  LIMIT,
  async () => {
    const database = await createDatabase("outage");
    const proxy = await startProxy(database);
    cleanups.push(() => proxy.close());
    const controller = await start({ host: "127.0.0.1", port: proxy.port, database: "outage" });
    assert.equal((await get(controller, "/v1/state")).status, 200);

    proxy.cut();
    for (const url of [
      "/v1/state",
      "/v1/status",
      "/v1/routing",
      "/v1/routing/stream",
      "/v1/events",
      "/v1/drains",
      "/v1/telemetry",
    ]) {
      const res = await get(controller, url);
      assert.equal(res.status, 503, url);
      assert.equal(res.body.error.code, "RINGFENCE_CONTROL_DB_UNAVAILABLE");
      assert.equal(res.body.error.retryable, true);
      assert.equal(res.headers["retry-after"], "1");
    }
    const fence = await controller.app.inject({
      method: "POST",
      url: "/v1/cells/cell-0/fence",
      headers: { authorization: `Bearer ${TEST_TOKENS.operator}` },
      payload: { reason: "during outage" },
    });
    assert.equal(fence.statusCode, 503);
    assert.equal((await get(controller, "/v1/health")).status, 200);

    proxy.restore();
    let state = await get(controller, "/v1/state");
    // A pooled connection cut during the outage may still fail once; the pool then replaces it.
    for (let i = 0; i < 50 && state.status !== 200; i++) {
      await new Promise((r) => setTimeout(r, 50));
      state = await get(controller, "/v1/state");
    }
    assert.equal(state.status, 200);
    assert.equal(state.body.cells.find((c: { cell: string }) => c.cell === "cell-0").fenced, false);
  },
);
