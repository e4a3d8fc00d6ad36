import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { queryOnce } from "../lib/postgres.js";
import { startTestCluster, type TestCluster } from "../lib/postgres-testing.js";
import { sampleTopology } from "../topology/testing.js";
import type { Drain, Heartbeat, RoutingTable } from "../world/contracts.js";
import { buildLayout } from "../world/layout.js";
import { formatRouting } from "./routing-feed.js";
import { type Controller, type ControllerOptions, startController } from "./server.js";
import {
  healthyHeartbeat,
  ManualClock,
  openSse,
  type SseClient,
  type SseEvent,
  TEST_TOKENS,
} from "./testing.js";

/** A hung test fails alone, and `after` still stops PostgreSQL. */
const LIMIT = { timeout: 30_000 };
const topology = sampleTopology();
const layout = buildLayout(topology, 205);
const TIMEOUT_MS = 3_000;
/** The push of a drain must reach every router within a second. */
const DRAIN_DEADLINE_MS = 1_000;

let cluster: TestCluster | undefined;
const cleanups: (() => Promise<void> | void)[] = [];

before(async () => {
  cluster = await startTestCluster();
});

after(async () => {
  try {
    for (const cleanup of cleanups.reverse()) await Promise.resolve(cleanup()).catch(() => {});
  } finally {
    await cluster?.stop();
  }
});

/** A controller on a database of its own, closed after the tests. */
async function start(
  name: string,
  clock: ManualClock,
  extra: Partial<ControllerOptions> = {},
): Promise<Controller> {
  assert.ok(cluster);
  const { host, port } = cluster.primary;
  await queryOnce(host, port, `CREATE DATABASE ${name}`);
  const controller = await startController({
    topology,
    layout,
    tokens: TEST_TOKENS,
    database: { host, port, database: name },
    host: "127.0.0.1",
    port: 0,
    clock: clock.now,
    heartbeatTimeoutMs: TIMEOUT_MS,
    ...extra,
  });
  cleanups.push(() => controller.close());
  return controller;
}

async function call(
  controller: Controller,
  method: "GET" | "POST" | "DELETE",
  url: string,
  token: string,
  payload?: unknown,
) {
  const res = await controller.app.inject({
    method,
    url,
    headers: { authorization: `Bearer ${token}` },
    ...(payload === undefined ? {} : { payload: payload as object }),
  });
  return { status: res.statusCode, body: res.body === "" ? undefined : res.json() };
}

async function beat(controller: Controller, zone: string, heartbeat?: Heartbeat): Promise<void> {
  const res = await call(
    controller,
    "POST",
    `/v1/agents/${encodeURIComponent(zone)}/heartbeat`,
    TEST_TOKENS.agent,
    heartbeat ?? healthyHeartbeat(topology, layout, zone),
  );
  assert.equal(res.status, 204, JSON.stringify(res.body));
}

async function stream(controller: Controller, token: string = TEST_TOKENS.reader): Promise<SseClient> {
  const client = await openSse(`${controller.url}/v1/routing/stream`, token);
  cleanups.push(() => client.close());
  return client;
}

const table = (e: SseEvent): RoutingTable => {
  assert.equal(e.event, "routing");
  return JSON.parse(e.data) as RoutingTable;
};
const isRouting = (match: (t: RoutingTable) => boolean) => (e: SseEvent) =>
  e.event === "routing" && match(JSON.parse(e.data) as RoutingTable);

async function openConnections(controller: Controller): Promise<number> {
  return await new Promise<number>((resolve, reject) =>
    controller.app.server.getConnections((err, n) => (err ? reject(err) : resolve(n))),
  );
}

/** Waits until the server has seen every client leave; resolves to the connections still open. */
async function settled(controller: Controller): Promise<number> {
  let open = await openConnections(controller);
  for (let i = 0; i < 200 && open > 0; i++) {
    await new Promise((r) => setTimeout(r, 10));
    open = await openConnections(controller);
  }
  return open;
}

describe("routing stream, pushed on announced changes", LIMIT, () => {
  const clock = new ManualClock();
  let controller: Controller;

  before(async () => {
    // A check interval of an hour: every push below is caused by a notification, not by polling.
    controller = await start("pushed", clock, {
      routingCheckMs: 3_600_000,
      keepAliveMs: 100,
      maxRoutingStreams: 3,
    });
  });

  test("a client gets the current table at once, then a new one within a second of a drain", async () => {
    const client = await stream(controller);
    try {
      assert.equal(client.status, 200);
      assert.equal(client.headers["content-type"], "text/event-stream; charset=utf-8");
      const first = table(await client.waitFor((e) => e.event === "routing"));
      const polled = (await call(controller, "GET", "/v1/routing", TEST_TOKENS.reader)).body as RoutingTable;
      assert.deepEqual({ ...first, generatedAt: "" }, { ...polled, generatedAt: "" });
      assert.deepEqual(first.drains, []);

      const created = await call(controller, "POST", "/v1/drains", TEST_TOKENS.operator, {
        target: { kind: "zone", id: "r1/a" },
        reason: "stream test",
      });
      assert.equal(created.status, 201);
      const drain = created.body as Drain;
      const pushed = table(
        await client.waitFor(
          isRouting((t) => t.drains.some((d) => d.id === drain.id)),
          { from: 1, timeoutMs: DRAIN_DEADLINE_MS },
        ),
      );
      assert.deepEqual(pushed.drains, [drain]);
      assert.ok(pushed.version > first.version);

      const removed = await call(controller, "DELETE", `/v1/drains/${drain.id}`, TEST_TOKENS.operator, {
        reason: "over",
      });
      assert.equal(removed.status, 200);
      const cleared = await client.waitFor(
        isRouting((t) => t.drains.length === 0 && t.version > pushed.version),
        {
          from: 1,
          timeoutMs: DRAIN_DEADLINE_MS,
        },
      );
      // Nothing in between: one table per change.
      assert.equal(cleared.index, 2);

      // Fencing bumps the version too, and agents' tokens may follow the stream.
      const agentClient = await stream(controller, TEST_TOKENS.agent);
      try {
        await agentClient.waitFor((e) => e.event === "routing");
        await call(controller, "POST", "/v1/cells/cell-1/fence", TEST_TOKENS.operator, { reason: "stream" });
        for (const c of [client, agentClient]) {
          await c.waitFor(
            isRouting((t) => t.cells.find((x) => x.cell === "cell-1")?.fenced === true),
            {
              timeoutMs: DRAIN_DEADLINE_MS,
            },
          );
        }
        await call(controller, "POST", "/v1/cells/cell-1/unfence", TEST_TOKENS.operator, {
          reason: "stream",
        });
      } finally {
        agentClient.close();
      }
      await client.waitForComment((c) => c === "keep-alive");
    } finally {
      client.close();
    }
  });

  test("a heartbeat that changes an instance's health is pushed; one that changes nothing is not", async () => {
    const client = await stream(controller);
    try {
      await client.waitFor((e) => e.event === "routing");
      for (const zone of layout.zones) await beat(controller, zone.id);
      const healthy = await client.waitFor(
        isRouting((t) => Object.values(t.health).every((h) => h === "healthy")),
      );

      const sick = layout.instances.find((i) => i.zone === "r2/b");
      assert.ok(sick);
      // The same healthy report again changes nothing.
      await beat(controller, "r2/b");
      await beat(
        controller,
        "r2/b",
        healthyHeartbeat(topology, layout, "r2/b", {
          change: (p) => (p.id === `instance:${sick.id}` ? { ...p, health: "unhealthy", detail: "500s" } : p),
        }),
      );
      const pushed = await client.waitFor(
        isRouting((t) => t.health[sick.id] === "unhealthy"),
        {
          from: healthy.index + 1,
        },
      );
      // The unchanged heartbeat before it pushed nothing.
      assert.equal(pushed.index, healthy.index + 1);
      const t = table(pushed);
      for (const i of layout.instances)
        assert.equal(t.health[i.id], i.id === sick.id ? "unhealthy" : "healthy");

      await beat(controller, "r2/b");
      await client.waitFor(
        isRouting((x) => x.health[sick.id] === "healthy"),
        { from: pushed.index + 1 },
      );
    } finally {
      client.close();
    }
  });

  test("streams are bounded: beyond the maximum 503, retryable; a closed stream frees its place", async () => {
    assert.equal(await settled(controller), 0);
    const open = [await stream(controller), await stream(controller), await stream(controller)];
    for (const c of open) await c.waitFor((e) => e.event === "routing");
    const refused = await stream(controller);
    await refused.ended;
    assert.equal(refused.status, 503);
    assert.equal(refused.headers["retry-after"], "1");
    const error = JSON.parse(refused.text()).error;
    assert.equal(error.code, "RINGFENCE_TOO_MANY_STREAMS");
    assert.equal(error.retryable, true);

    open[0]?.close();
    let again = await stream(controller);
    // The server learns of the close when the socket's close reaches it.
    for (let i = 0; i < 100 && again.status === 503; i++) {
      await new Promise((r) => setTimeout(r, 20));
      again = await stream(controller);
    }
    assert.equal(again.status, 200);
    await again.waitFor((e) => e.event === "routing");
    for (const c of [...open, again]) c.close();
  });

  test("tokens: none is 401; every role may follow", async () => {
    const none = await openSse(`${controller.url}/v1/routing/stream`, "not-a-token");
    await none.ended;
    assert.equal(none.status, 401);
  });

  test("streams let go of their connections when clients leave", async () => {
    for (const c of [await stream(controller), await stream(controller)]) {
      await c.waitFor((e) => e.event === "routing");
      c.close();
    }
    assert.equal(await settled(controller), 0);
  });
});

describe("routing stream, heartbeat timeouts", LIMIT, () => {
  test("agents falling silent are pushed as unknown health; closing the controller ends the stream", async () => {
    const clock = new ManualClock();
    const controller = await start("timeouts", clock, { routingCheckMs: 50 });
    for (const zone of layout.zones) await beat(controller, zone.id);
    const client = await stream(controller);
    try {
      const healthy = await client.waitFor(
        isRouting((t) => Object.values(t.health).every((h) => h === "healthy")),
      );
      // Nothing is announced: only the periodic check can notice that the agents went silent.
      clock.advance(TIMEOUT_MS + 1);
      await client.waitFor(
        isRouting((t) => Object.values(t.health).every((h) => h === "unknown")),
        {
          from: healthy.index + 1,
        },
      );
      await controller.close();
      await client.ended;
    } finally {
      client.close();
    }
  });
});

test("a table is framed as one routing event with the JSON on one data line", () => {
  const t: RoutingTable = {
    version: 3,
    generatedAt: "2030-01-01T00:00:00.000Z",
    buckets: 4,
    bucketTable: [[0, 4]],
    cells: [],
    health: {},
    drains: [{ id: "drain-1", target: { kind: "zone", id: "r1/a" }, reason: "two\nlines", createdAt: "x" }],
  };
  const text = formatRouting(t);
  assert.ok(text.startsWith("event: routing\ndata: {"));
  assert.ok(text.endsWith("}\n\n"));
  assert.equal(text.split("\n").length, 4);
  assert.deepEqual(JSON.parse(text.split("\n")[1]?.slice("data: ".length) ?? ""), t);
});
