import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { sampleTopology } from "../topology/testing.js";
import type { Drain, RoutingTable, WorldEvent } from "../world/contracts.js";
import { buildLayout } from "../world/layout.js";
import type { Controller } from "./server.js";
import type { WorldStatus } from "./status.js";
import { healthyHeartbeat, ManualClock, startTestController, TEST_TOKENS } from "./testing.js";

/** A hung test fails alone, and `after` still stops PostgreSQL. */
const LIMIT = { timeout: 30_000 };
const topology = sampleTopology();
const layout = buildLayout(topology, 204);
const clock = new ManualClock();
const op = TEST_TOKENS.operator;
const instance = layout.instances[0]?.id as string;

let controller: Controller | undefined;
let fixture: Awaited<ReturnType<typeof startTestController>> | undefined;

before(async () => {
  fixture = await startTestController({
    topology,
    layout,
    clock,
  });
  controller = fixture.controller;
});

after(async () => {
  await fixture?.stop();
});

type Method = "GET" | "POST" | "DELETE";

async function call(method: Method, url: string, token?: string, payload?: unknown) {
  assert.ok(controller, "the controller did not start");
  const res = await controller.app.inject({
    method,
    url,
    headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
    ...(payload === undefined ? {} : { payload: payload as object }),
  });
  return { status: res.statusCode, headers: res.headers, body: res.body === "" ? undefined : res.json() };
}

const version = async () =>
  ((await call("GET", "/v1/state", TEST_TOKENS.reader)).body as { desiredVersion: number }).desiredVersion;
const drains = async () =>
  ((await call("GET", "/v1/drains", TEST_TOKENS.reader)).body as { drains: Drain[] }).drains;
const eventsAfter = async (id: number) =>
  (await call("GET", `/v1/events?after=${id}`, TEST_TOKENS.reader)).body.events as WorldEvent[];
const lastEventId = async () => {
  const events = (await call("GET", "/v1/events?limit=1000", TEST_TOKENS.reader)).body.events as WorldEvent[];
  return events[events.length - 1]?.id ?? 0;
};

describe("drains", LIMIT, () => {
  test("create, list and remove a region drain: version bumped, events recorded, routing and status show it", async () => {
    for (const zone of layout.zones) {
      const beat = await call(
        "POST",
        `/v1/agents/${encodeURIComponent(zone.id)}/heartbeat`,
        TEST_TOKENS.agent,
        healthyHeartbeat(topology, layout, zone.id),
      );
      assert.equal(beat.status, 204);
    }
    const before = await version();
    const mark = await lastEventId();
    const created = await call("POST", "/v1/drains", op, {
      target: { kind: "region", id: "r2" },
      reason: "network maintenance",
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const drain = created.body as Drain;
    assert.match(drain.id, /^drain-\d+$/);
    assert.deepEqual(drain.target, { kind: "region", id: "r2" });
    assert.equal(drain.reason, "network maintenance");
    assert.equal(drain.createdAt, new Date(clock.nowMs).toISOString());
    assert.deepEqual(await drains(), [drain]);

    const bumped = await version();
    assert.ok(bumped > before);
    const routing = (await call("GET", "/v1/routing", TEST_TOKENS.reader)).body as RoutingTable;
    assert.equal(routing.version, bumped);
    assert.deepEqual(routing.drains, [drain]);
    const status = (await call("GET", "/v1/status", TEST_TOKENS.reader)).body as WorldStatus;
    assert.deepEqual(status.drains, [drain]);
    const r2 = status.regions.find((r) => r.name === "r2");
    assert.equal(r2?.drain, drain.id);
    assert.equal(r2?.rollup.health, "degraded");
    assert.match(r2?.rollup.reason ?? "", /^drained: network maintenance/);
    assert.ok(status.instances.filter((i) => i.region === "r2").every((i) => i.drain === drain.id));

    const [createdEvent] = await eventsAfter(mark);
    assert.ok(createdEvent);
    assert.equal(createdEvent.kind, "drain.created");
    assert.equal(createdEvent.actor, "operator");
    assert.equal(createdEvent.subject, "r2");
    assert.match(createdEvent.message, /network maintenance/);
    assert.equal(createdEvent.data.reason, "network maintenance");
    assert.equal(createdEvent.data.ip, "127.0.0.1");
    assert.equal(createdEvent.data.drain, drain.id);
    assert.deepEqual(createdEvent.data.target, { kind: "region", id: "r2" });
    assert.equal(createdEvent.data.desiredVersion, bumped);

    clock.advance(1_000);
    const removed = await call("DELETE", `/v1/drains/${drain.id}`, op, { reason: "maintenance over" });
    assert.equal(removed.status, 200, JSON.stringify(removed.body));
    assert.deepEqual(removed.body, drain);
    assert.deepEqual(await drains(), []);
    const after = await version();
    assert.ok(after > bumped);
    const routingAfter = (await call("GET", "/v1/routing", TEST_TOKENS.reader)).body as RoutingTable;
    assert.deepEqual(routingAfter.drains, []);
    assert.equal(routingAfter.version, after);
    const statusAfter = (await call("GET", "/v1/status", TEST_TOKENS.reader)).body as WorldStatus;
    assert.deepEqual(statusAfter.drains, []);
    assert.equal(statusAfter.regions.find((r) => r.name === "r2")?.drain, null);

    const removedEvent = (await eventsAfter(createdEvent.id)).find((e) => e.kind === "drain.removed");
    assert.ok(removedEvent);
    assert.equal(removedEvent.actor, "operator");
    assert.equal(removedEvent.subject, "r2");
    assert.equal(removedEvent.data.reason, "maintenance over");
    assert.equal(removedEvent.data.drainReason, "network maintenance");
    assert.equal(removedEvent.data.ip, "127.0.0.1");
    assert.equal(removedEvent.data.desiredVersion, after);

    const again = await call("DELETE", `/v1/drains/${drain.id}`, op, { reason: "twice" });
    assert.equal(again.status, 404);
    assert.equal(again.body.error.code, "RINGFENCE_NOT_FOUND");
    assert.match(again.body.error.message, new RegExp(drain.id));
  });

  test("zones and instances can be drained; ids grow; several drains are listed oldest first", async () => {
    const zone = await call("POST", "/v1/drains", op, {
      target: { kind: "zone", id: "r1/b" },
      reason: "rack",
    });
    const one = await call("POST", "/v1/drains", op, {
      target: { kind: "instance", id: instance },
      reason: "leak",
    });
    assert.equal(zone.status, 201);
    assert.equal(one.status, 201);
    const n = (d: Drain) => Number(d.id.slice("drain-".length));
    assert.ok(n(one.body) > n(zone.body));
    assert.deepEqual(await drains(), [zone.body, one.body]);
    const routing = (await call("GET", "/v1/routing", TEST_TOKENS.agent)).body as RoutingTable;
    assert.deepEqual(routing.drains, [zone.body, one.body]);
    for (const d of [zone.body, one.body] as Drain[]) {
      assert.equal((await call("DELETE", `/v1/drains/${d.id}`, op, { reason: "done" })).status, 200);
    }
    assert.deepEqual(await drains(), []);
  });

  test("409 when the same target is already drained, also for racing requests", async () => {
    const first = await call("POST", "/v1/drains", op, {
      target: { kind: "zone", id: "r3/a" },
      reason: "one",
    });
    assert.equal(first.status, 201);
    const before = await version();
    const dup = await call("POST", "/v1/drains", op, { target: { kind: "zone", id: "r3/a" }, reason: "two" });
    assert.equal(dup.status, 409);
    assert.equal(dup.body.error.code, "RINGFENCE_ALREADY_DRAINED");
    assert.equal(dup.body.error.retryable, false);
    assert.match(dup.body.error.message, new RegExp(`${first.body.id}.*one`));
    assert.equal(dup.body.error.problems[0].path, "body.target");
    assert.equal(await version(), before, "a refused drain changes nothing");
    // Another kind with the same id, or the region around it, is a different target.
    const region = await call("POST", "/v1/drains", op, {
      target: { kind: "region", id: "r3" },
      reason: "r",
    });
    assert.equal(region.status, 201);

    const racing = await Promise.all(
      Array.from({ length: 5 }, (_, i) =>
        call("POST", "/v1/drains", op, { target: { kind: "zone", id: "r2/b" }, reason: `race ${i}` }),
      ),
    );
    assert.deepEqual(racing.map((r) => r.status).sort(), [201, 409, 409, 409, 409]);
    const active = await drains();
    assert.equal(active.filter((d) => d.target.id === "r2/b").length, 1);
    for (const d of active) await call("DELETE", `/v1/drains/${d.id}`, op, { reason: "cleanup" });
  });

  test("404 names an unknown target; nothing is drained", async () => {
    const before = await version();
    for (const [kind, id] of [
      ["region", "r9"],
      ["zone", "r1/z"],
      ["zone", "r1"],
      ["instance", "app/cell-99/r1/0"],
      ["instance", `instance:${instance}`],
    ] as const) {
      const res = await call("POST", "/v1/drains", op, { target: { kind, id }, reason: "x" });
      assert.equal(res.status, 404, `${kind} ${id}`);
      assert.equal(res.body.error.code, "RINGFENCE_NOT_FOUND");
      assert.ok(res.body.error.message.includes(`no ${kind} ${id}`), res.body.error.message);
      assert.equal(res.body.error.problems[0].path, "body.target.id");
    }
    assert.deepEqual(await drains(), []);
    assert.equal(await version(), before);
    for (const id of ["drain-999999", "nope", "drain-0"]) {
      const res = await call("DELETE", `/v1/drains/${id}`, op, { reason: "x" });
      assert.equal(res.status, 404, id);
      assert.equal(res.body.error.problems[0].path, "params.id");
    }
  });

  test("400 names the field", async () => {
    const problem = async (method: Method, url: string, payload: unknown, path: string) => {
      const res = await call(method, url, op, payload);
      assert.equal(res.status, 400, JSON.stringify(res.body));
      assert.equal(res.body.error.code, "RINGFENCE_BAD_REQUEST");
      assert.equal(res.body.error.problems[0].path, path, JSON.stringify(res.body));
    };
    const target = { kind: "region", id: "r1" };
    await problem("POST", "/v1/drains", { reason: "x" }, "body.target");
    await problem("POST", "/v1/drains", { target }, "body.reason");
    await problem("POST", "/v1/drains", { target, reason: "" }, "body.reason");
    await problem("POST", "/v1/drains", { target, reason: "x".repeat(501) }, "body.reason");
    await problem(
      "POST",
      "/v1/drains",
      { target: { kind: "planet", id: "r1" }, reason: "x" },
      "body.target.kind",
    );
    await problem("POST", "/v1/drains", { target: { kind: "region" }, reason: "x" }, "body.target.id");
    await problem(
      "POST",
      "/v1/drains",
      { target: { kind: "region", id: "" }, reason: "x" },
      "body.target.id",
    );
    await problem("POST", "/v1/drains", { target: { ...target, all: true }, reason: "x" }, "body.target.all");
    await problem("POST", "/v1/drains", { target, reason: "x", force: true }, "body.force");
    await problem("POST", "/v1/drains", { target: "r1", reason: "x" }, "body.target");
    await problem("DELETE", "/v1/drains/drain-1", {}, "body.reason");
    await problem("DELETE", "/v1/drains/drain-1", { reason: 3 }, "body.reason");
    assert.deepEqual(await drains(), []);
  });

  test("only operators drain; every role may list; no token is 401", async () => {
    const body = { target: { kind: "region", id: "r1" }, reason: "x" };
    for (const token of [TEST_TOKENS.reader, TEST_TOKENS.agent]) {
      const post = await call("POST", "/v1/drains", token, body);
      assert.equal(post.status, 403);
      assert.equal(post.body.error.code, "RINGFENCE_FORBIDDEN");
      const del = await call("DELETE", "/v1/drains/drain-1", token, { reason: "x" });
      assert.equal(del.status, 403);
      assert.equal((await call("GET", "/v1/drains", token)).status, 200);
    }
    assert.equal((await call("POST", "/v1/drains", undefined, body)).status, 401);
    assert.equal((await call("GET", "/v1/drains")).status, 401);
    assert.deepEqual(await drains(), []);
  });
});
