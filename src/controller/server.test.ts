import assert from "node:assert/strict";
import { request as httpRequest, type IncomingMessage } from "node:http";
import { after, before, describe, test } from "node:test";
import type { FastifyInstance } from "fastify";
import { sampleTopology } from "../topology/testing.js";
import type { DesiredState, RoutingTable, WorldEvent } from "../world/contracts.js";
import { buildLayout } from "../world/layout.js";
import type { Controller } from "./server.js";
import type { WorldStatus } from "./status.js";
import { healthyHeartbeat, ManualClock, startTestController, TEST_TOKENS } from "./testing.js";

/** A hung test fails alone, and `after` still stops PostgreSQL. */
const LIMIT = { timeout: 30_000 };
const topology = sampleTopology();
const layout = buildLayout(topology, 201);
const clock = new ManualClock();
const TIMEOUT_MS = 3_000;

let controller: Controller | undefined;
let fixture: Awaited<ReturnType<typeof startTestController>> | undefined;

before(async () => {
  fixture = await startTestController({
    topology,
    layout,
    heartbeatTimeoutMs: TIMEOUT_MS,
    clock,
  });
  controller = fixture.controller;
});

after(async () => {
  await fixture?.stop();
});

type Method = "GET" | "POST";

function app(): FastifyInstance {
  assert.ok(controller, "the controller did not start");
  return controller.app;
}

async function call(method: Method, url: string, token?: string, payload?: unknown) {
  assert.ok(controller);
  const headers: Record<string, string> = token === undefined ? {} : { authorization: `Bearer ${token}` };
  const res = await app().inject({
    method,
    url,
    headers,
    ...(payload === undefined ? {} : { payload: payload as object }),
  });
  return { status: res.statusCode, headers: res.headers, body: res.body === "" ? undefined : res.json() };
}

const enc = encodeURIComponent;
const READ_ROUTES = ["/v1/topology", "/v1/layout", "/v1/state", "/v1/routing", "/v1/status", "/v1/events"];
const OPERATOR_ROUTES: [string, unknown][] = [
  ["/v1/cells/cell-0/fence", { reason: "drill" }],
  ["/v1/cells/cell-0/unfence", { reason: "drill" }],
  ["/v1/processes/restart", { id: "database:cell-0/r1", reason: "drill" }],
];

describe("authentication and roles", LIMIT, () => {
  test("/v1/health needs no token", async () => {
    const res = await call("GET", "/v1/health");
    assert.equal(res.status, 200);
    assert.equal(res.body.status, "ok");
    assert.match(res.body.version, /^\d+\.\d+\.\d+/);
  });

  test("401 without a token, with a malformed header and with an unknown token", async () => {
    assert.ok(controller);
    for (const authorization of [
      undefined,
      "Basic abc",
      "Bearer",
      "Bearer two words",
      "reader-token-0001",
      "Bearer nope",
    ]) {
      const res = await app().inject({
        method: "GET",
        url: "/v1/state",
        headers: authorization === undefined ? {} : { authorization },
      });
      assert.equal(res.statusCode, 401, `authorization: ${authorization}`);
      assert.equal(res.json().error.code, "RINGFENCE_UNAUTHORIZED");
      assert.match(String(res.headers["www-authenticate"]), /^Bearer/);
    }
  });

  test("401 comes before validation: an unauthenticated bad body learns nothing", async () => {
    const res = await call("POST", "/v1/cells/cell-0/fence", undefined, { nope: 1 });
    assert.equal(res.status, 401);
  });

  test("readers may read, not act or speak for agents", async () => {
    for (const url of READ_ROUTES)
      assert.equal((await call("GET", url, TEST_TOKENS.reader)).status, 200, url);
    for (const [url, body] of OPERATOR_ROUTES) {
      const res = await call("POST", url, TEST_TOKENS.reader, body);
      assert.equal(res.status, 403, url);
      assert.equal(res.body.error.code, "RINGFENCE_FORBIDDEN");
    }
    const agentRoutes: [Method, string, unknown?][] = [
      ["GET", `/v1/agents/${enc("r1/a")}/desired`],
      ["POST", `/v1/agents/${enc("r1/a")}/heartbeat`, healthyHeartbeat(topology, layout, "r1/a")],
      [
        "POST",
        "/v1/routers/r1/heartbeat",
        { region: "r1", pid: 1, tableVersion: 1, stale: false, requests: 0, errors: 0 },
      ],
    ];
    for (const [method, url, body] of agentRoutes) {
      const res = await call(method, url, TEST_TOKENS.reader, body);
      assert.equal(res.status, 403, url);
      assert.equal(res.body.error.code, "RINGFENCE_FORBIDDEN");
    }
  });

  test("agents may read and use agent routes, not act; operators may do everything", async () => {
    for (const url of READ_ROUTES) assert.equal((await call("GET", url, TEST_TOKENS.agent)).status, 200, url);
    for (const url of READ_ROUTES)
      assert.equal((await call("GET", url, TEST_TOKENS.operator)).status, 200, url);
    assert.equal((await call("GET", `/v1/agents/${enc("r1/a")}/desired`, TEST_TOKENS.agent)).status, 200);
    assert.equal((await call("GET", `/v1/agents/${enc("r1/a")}/desired`, TEST_TOKENS.operator)).status, 200);
    for (const [url, body] of OPERATOR_ROUTES) {
      assert.equal((await call("POST", url, TEST_TOKENS.agent, body)).status, 403, url);
      assert.equal((await call("POST", url, TEST_TOKENS.operator, body)).status, 200, url);
    }
  });

  test("topology and layout are served whole", async () => {
    assert.deepEqual(
      (await call("GET", "/v1/topology", TEST_TOKENS.reader)).body,
      JSON.parse(JSON.stringify(topology)),
    );
    assert.deepEqual(
      (await call("GET", "/v1/layout", TEST_TOKENS.reader)).body,
      JSON.parse(JSON.stringify(layout)),
    );
  });

  test("a real socket request answers too", async () => {
    assert.ok(controller);
    const url = new URL(`${controller.url}/v1/state`);
    const { status, body } = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      // agent: false closes the connection after the answer, so no socket lingers for later tests.
      const req = httpRequest(
        url,
        { agent: false, headers: { authorization: `Bearer ${TEST_TOKENS.reader}` } },
        (res) => {
          let text = "";
          res.setEncoding("utf8");
          res.on("data", (chunk: string) => {
            text += chunk;
          });
          res.on("end", () => resolve({ status: res.statusCode ?? 0, body: text }));
        },
      );
      req.on("error", reject);
      req.end();
    });
    assert.equal(status, 200);
    assert.equal((JSON.parse(body) as { cells: unknown[] }).cells.length, topology.cells.count);
  });
});

describe("validation", LIMIT, () => {
  const op = TEST_TOKENS.operator;
  const problem = async (url: string, payload: unknown, path: string) => {
    const res = await call("POST", url, op, payload);
    assert.equal(res.status, 400, JSON.stringify(res.body));
    assert.equal(res.body.error.code, "RINGFENCE_BAD_REQUEST");
    assert.equal(res.body.error.problems[0].path, path, JSON.stringify(res.body));
    return res.body.error;
  };

  test("400 names the field: missing, too long, wrong type, unknown", async () => {
    await problem("/v1/cells/cell-0/fence", {}, "body.reason");
    await problem("/v1/cells/cell-0/fence", { reason: "" }, "body.reason");
    const long = await problem("/v1/cells/cell-0/fence", { reason: "x".repeat(501) }, "body.reason");
    assert.match(long.problems[0].message, /500/);
    await problem("/v1/cells/cell-0/fence", { reason: 12 }, "body.reason");
    await problem("/v1/cells/cell-0/fence", { reason: "ok", force: true }, "body.force");
    await problem("/v1/processes/restart", { reason: "ok" }, "body.id");
    const hb = healthyHeartbeat(topology, layout, "r1/a");
    const bad = { ...hb, processes: [{ ...hb.processes[0], state: "dancing" }] };
    const res = await call("POST", `/v1/agents/${enc("r1/a")}/heartbeat`, TEST_TOKENS.agent, bad);
    assert.equal(res.status, 400);
    assert.equal(res.body.error.problems[0].path, "body.processes[0].state");
    const wrongZone = await call("POST", `/v1/agents/${enc("r1/a")}/heartbeat`, TEST_TOKENS.agent, {
      ...hb,
      zone: "r1/b",
    });
    assert.equal(wrongZone.body.error.problems[0].path, "body.zone");
  });

  test("a body that is not JSON is a 400 on the body", async () => {
    assert.ok(controller);
    for (const [type, payload] of [
      ["application/json", "{not json"],
      ["text/plain", "fence it"],
    ] as const) {
      const res = await app().inject({
        method: "POST",
        url: "/v1/cells/cell-0/fence",
        headers: { authorization: `Bearer ${op}`, "content-type": type },
        payload,
      });
      assert.equal(res.statusCode, 400, type);
      assert.equal(res.json().error.code, "RINGFENCE_BAD_REQUEST");
      assert.equal(res.json().error.problems[0].path, "body");
    }
  });

  test("bodies over 1 MiB are refused", async () => {
    const res = await call("POST", "/v1/cells/cell-0/fence", op, { reason: "x".repeat(1024 * 1024) });
    assert.equal(res.status, 413);
    assert.equal(res.body.error.code, "RINGFENCE_PAYLOAD_TOO_LARGE");
  });

  test("404 for unknown cells, processes, zones, regions and routes", async () => {
    const cases: [Method, string, string, unknown?][] = [
      ["POST", "/v1/cells/cell-99/fence", op, { reason: "x" }],
      ["POST", "/v1/processes/restart", op, { id: "database:cell-99/r1", reason: "x" }],
      ["GET", `/v1/agents/${enc("r9/a")}/desired`, TEST_TOKENS.agent],
      [
        "POST",
        "/v1/routers/r9/heartbeat",
        TEST_TOKENS.agent,
        { region: "r9", pid: 1, tableVersion: 1, stale: false, requests: 0, errors: 0 },
      ],
      ["GET", "/v1/nothing", op],
    ];
    for (const [method, url, token, body] of cases) {
      const res = await call(method, url, token, body);
      assert.equal(res.status, 404, url);
      assert.equal(res.body.error.code, "RINGFENCE_NOT_FOUND");
    }
  });

  test("events: limit is bounded", async () => {
    for (const q of ["limit=0", "limit=1001", "limit=abc", "after=-1"]) {
      const res = await call("GET", `/v1/events?${q}`, TEST_TOKENS.reader);
      assert.equal(res.status, 400, q);
      assert.match(res.body.error.problems[0].path, /^querystring\.(limit|after)$/);
    }
  });
});

describe("operator actions", LIMIT, () => {
  const op = TEST_TOKENS.operator;

  test("fence and unfence: logged with actor, kind, subject, reason and IP; bump the desired version", async () => {
    const before = (await call("GET", `/v1/agents/${enc("r2/a")}/desired`, TEST_TOKENS.agent))
      .body as DesiredState;
    const fenced = await call("POST", "/v1/cells/cell-2/fence", op, { reason: "suspected split brain" });
    assert.equal(fenced.status, 200);
    assert.deepEqual(fenced.body.cell, { cell: "cell-2", primary: "r3", epoch: 1, fenced: true });
    assert.equal(fenced.body.changed, true);
    assert.ok(fenced.body.desiredVersion > before.version);

    const state = (await call("GET", "/v1/state", TEST_TOKENS.reader)).body;
    assert.equal(state.cells.find((c: { cell: string }) => c.cell === "cell-2").fenced, true);
    assert.equal(state.desiredVersion, fenced.body.desiredVersion);
    assert.deepEqual(
      state.cells.map((c: { cell: string }) => c.cell),
      ["cell-0", "cell-1", "cell-2", "cell-3"],
    );
    const desired = (await call("GET", `/v1/agents/${enc("r2/a")}/desired`, TEST_TOKENS.agent))
      .body as DesiredState;
    assert.equal(desired.version, fenced.body.desiredVersion);
    assert.equal(desired.cells.find((c) => c.cell === "cell-2")?.fenced, true);

    const unfenced = await call("POST", "/v1/cells/cell-2/unfence", op, { reason: "all clear" });
    assert.equal(unfenced.body.cell.fenced, false);
    assert.ok(unfenced.body.desiredVersion > fenced.body.desiredVersion);

    const events = (await call("GET", `/v1/events?after=${fenced.body.event.id - 1}`, TEST_TOKENS.reader))
      .body.events as WorldEvent[];
    const [f, u] = events;
    assert.ok(f && u);
    assert.equal(f.kind, "cell.fenced");
    assert.equal(f.actor, "operator");
    assert.equal(f.subject, "cell-2");
    assert.equal(f.data.reason, "suspected split brain");
    assert.equal(f.data.action, "fence");
    assert.equal(f.data.ip, "127.0.0.1");
    assert.match(f.message, /suspected split brain/);
    assert.equal(u.kind, "cell.unfenced");
    assert.equal(u.data.reason, "all clear");
  });

  test("desired state by long poll: held until the version moves past ?after, or for waitMs at most", async () => {
    const url = `/v1/agents/${enc("r1/a")}/desired`;
    const now = (await call("GET", url, TEST_TOKENS.agent)).body as DesiredState;
    // Nothing changes: answered with the same version after about waitMs.
    const started = performance.now();
    const idle = (await call("GET", `${url}?after=${now.version}&waitMs=300`, TEST_TOKENS.agent)).body;
    assert.equal(idle.version, now.version);
    assert.ok(performance.now() - started >= 250, "answered before waitMs although nothing changed");
    // A change while it waits: answered as soon as it is committed.
    const polled = call("GET", `${url}?after=${now.version}&waitMs=20000`, TEST_TOKENS.agent);
    await new Promise((r) => setTimeout(r, 100));
    const changedAt = performance.now();
    const fenced = await call("POST", "/v1/cells/cell-1/fence", op, { reason: "long poll test" });
    const answer = (await polled).body as DesiredState;
    assert.ok(answer.version > now.version);
    assert.equal(answer.version, fenced.body.desiredVersion);
    assert.ok(performance.now() - changedAt < 2_000, "the long poll was not woken by the change");
    await call("POST", "/v1/cells/cell-1/unfence", op, { reason: "long poll test" });
    // Already behind: answered at once.
    const behind = await call("GET", `${url}?after=0&waitMs=20000`, TEST_TOKENS.agent);
    assert.equal(behind.status, 200);
    for (const q of ["after=-1", "after=x", "waitMs=1000000", "other=1"]) {
      assert.equal((await call("GET", `${url}?${q}`, TEST_TOKENS.agent)).status, 400, q);
    }
  });

  test("restart bumps only that process's nonce, in its zone's desired state", async () => {
    const id = "instance:app/cell-1/r2/0";
    const zone = layout.instances.find((i) => i.id === "app/cell-1/r2/0")?.zone as string;
    const before = (await call("GET", `/v1/agents/${enc(zone)}/desired`, TEST_TOKENS.agent))
      .body as DesiredState;
    assert.equal(before.restarts[id], 0);
    const res = await call("POST", "/v1/processes/restart", op, { id, reason: "stuck" });
    assert.equal(res.status, 200);
    assert.deepEqual(res.body.process, { id, zone, nonce: 1 });
    const after = (await call("GET", `/v1/agents/${enc(zone)}/desired`, TEST_TOKENS.agent))
      .body as DesiredState;
    assert.ok(after.version > before.version);
    for (const [pid, nonce] of Object.entries(after.restarts)) {
      assert.equal(nonce, pid === id ? (before.restarts[pid] ?? 0) + 1 : before.restarts[pid], pid);
    }
    // Every process of the zone and only those.
    const placed = [
      ...layout.databases.filter((d) => d.zone === zone).map((d) => `database:${d.id}`),
      ...layout.writers.filter((d) => d.zone === zone).map((d) => `writer:${d.id}`),
      ...layout.instances.filter((d) => d.zone === zone).map((d) => `instance:${d.id}`),
    ].sort();
    assert.deepEqual(Object.keys(after.restarts).sort(), placed);
    const event = res.body.event as WorldEvent;
    assert.equal(event.kind, "process.restart-requested");
    assert.equal(event.subject, id);
    assert.equal(event.actor, "operator");
    assert.equal(event.data.reason, "stuck");
    // The two-segment spelling of a zone reaches the same route.
    const plain = (await call("GET", `/v1/agents/${zone}/desired`, TEST_TOKENS.agent)).body as DesiredState;
    assert.equal(plain.restarts[id], 1);
  });
});

describe("heartbeats, routing and status", LIMIT, () => {
  const agent = TEST_TOKENS.agent;
  const beatAll = async (except: string[] = []) => {
    for (const zone of layout.zones.map((z) => z.id)) {
      if (except.includes(zone)) continue;
      const res = await call(
        "POST",
        `/v1/agents/${enc(zone)}/heartbeat`,
        agent,
        healthyHeartbeat(topology, layout, zone),
      );
      assert.equal(res.status, 204, JSON.stringify(res.body));
    }
    for (const r of layout.regions) {
      const res = await call("POST", `/v1/routers/${r.name}/heartbeat`, agent, {
        region: r.name,
        pid: 77,
        tableVersion: 1,
        stale: false,
        requests: 10,
        errors: 0,
      });
      assert.equal(res.status, 204);
    }
  };

  test("heartbeats are stored, their events appended, and status and routing reflect them", async () => {
    const hb = healthyHeartbeat(topology, layout, "r1/a", {
      events: [
        {
          at: "2030-01-01T00:00:01.000Z",
          kind: "process.started",
          subject: "database:cell-0/r1",
          message: "started",
          data: { pid: 1000 },
        },
      ],
    });
    const res = await call("POST", `/v1/agents/${enc("r1/a")}/heartbeat`, agent, {
      ...hb,
      future: "ignored",
    });
    assert.equal(res.status, 204, JSON.stringify(res.body));
    await beatAll(["r1/a"]);

    const tail = (await call("GET", "/v1/events?limit=1000", TEST_TOKENS.reader)).body.events as WorldEvent[];
    const started = tail.find((e) => e.kind === "process.started");
    assert.ok(started);
    assert.equal(started.actor, "agent:r1/a");
    assert.equal(started.subject, "database:cell-0/r1");
    assert.equal(started.at, "2030-01-01T00:00:01.000Z");
    assert.deepEqual(started.data, { pid: 1000 });

    const routing = (await call("GET", "/v1/routing", TEST_TOKENS.reader)).body as RoutingTable;
    assert.equal(routing.buckets, topology.cells.buckets);
    assert.equal(
      routing.bucketTable.reduce((n, [, c]) => n + c, 0),
      topology.cells.buckets,
    );
    assert.equal(routing.cells.length, topology.cells.count);
    assert.equal(Object.keys(routing.health).length, layout.instances.length);
    assert.ok(Object.values(routing.health).every((h) => h === "healthy"));

    const status = (await call("GET", "/v1/status", TEST_TOKENS.reader)).body as WorldStatus;
    assert.equal(status.world.rollup.health, "healthy", status.world.rollup.reason);
    const cell0 = status.cells.find((c) => c.cell === "cell-0");
    assert.ok(cell0);
    assert.equal(cell0.synchronousStandbyNames, "ANY 1 (standbys)");
    const standby = cell0.databases.find((d) => d.region === "r2");
    assert.equal(standby?.role, "standby");
    assert.deepEqual(standby?.replication, {
      state: "streaming",
      syncState: "quorum",
      lagBytes: 128,
      flushLagMs: 2,
      replayLagMs: 3,
    });
    assert.equal(cell0.databases.find((d) => d.region === "r1")?.replication, null);
    assert.ok(
      status.regions.every((r) =>
        r.zones.every((z) => z.agent.reachable && z.agent.lastHeartbeatAgeMs === 0),
      ),
    );
    assert.ok(status.routers.every((r) => r.reachable && r.stale === false));
    assert.equal(status.instances.length, layout.instances.length);
    assert.ok(status.events.length > 0 && status.events.length <= 20);
  });

  test("an agent silent for longer than the timeout is unreachable; its instances are unknown", async () => {
    clock.advance(TIMEOUT_MS + 1);
    await beatAll(["r1/a"]);
    const status = (await call("GET", "/v1/status", TEST_TOKENS.reader)).body as WorldStatus;
    const zone = status.regions.flatMap((r) => r.zones).find((z) => z.id === "r1/a");
    assert.ok(zone);
    assert.equal(zone.agent.reachable, false);
    assert.equal(zone.agent.lastHeartbeatAgeMs, TIMEOUT_MS + 1);
    assert.equal(zone.rollup.health, "unhealthy");
    assert.equal(status.regions.find((r) => r.name === "r1")?.rollup.health, "degraded");
    const silent = layout.instances.filter((i) => i.zone === "r1/a").map((i) => i.id);
    assert.ok(silent.length > 0);
    for (const id of silent) {
      const inst = status.instances.find((i) => i.id === id);
      assert.equal(inst?.health, "unknown");
      assert.equal(inst?.rollup.health, "unhealthy");
    }
    // cell-0's primary lives in r1/a: its database health is unknown, so the cell is unhealthy.
    const cell0 = status.cells.find((c) => c.cell === "cell-0");
    assert.equal(cell0?.rollup.health, "unhealthy");
    assert.match(cell0?.rollup.reason ?? "", /primary database cell-0\/r1 is unknown/);

    const routing = (await call("GET", "/v1/routing", TEST_TOKENS.reader)).body as RoutingTable;
    for (const id of silent) assert.equal(routing.health[id], "unknown", id);
    const others = layout.instances.filter((i) => i.zone !== "r1/a");
    for (const i of others) assert.equal(routing.health[i.id], "healthy", i.id);
  });
});

describe("event stream", LIMIT, () => {
  /** Opens an SSE stream and collects what arrives; `waitFor` waits until the text matches. */
  const openStream = (query: string, headers: Record<string, string> = {}) => {
    assert.ok(controller);
    const url = new URL(`${controller.url}/v1/events/stream${query}`);
    let text = "";
    let response: IncomingMessage | undefined;
    const waiters: (() => void)[] = [];
    const req = httpRequest(
      url,
      { agent: false, headers: { ...headers, authorization: `Bearer ${TEST_TOKENS.reader}` } },
      (res) => {
        response = res;
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => {
          text += chunk;
          for (const w of waiters.splice(0)) w();
        });
      },
    );
    req.on("error", () => {});
    req.end();
    const waitFor = async (pattern: RegExp) => {
      for (let i = 0; i < 500 && !pattern.test(text); i++) {
        await new Promise<void>((resolve) => {
          waiters.push(resolve);
          setTimeout(resolve, 20);
        });
      }
      assert.match(text, pattern);
    };
    return { req, waitFor, text: () => text, response: () => response };
  };

  test("a client receives events appended after it connected, and earlier ones with ?after=", async () => {
    assert.ok(controller);
    const [first, second] = (await call("GET", "/v1/events?limit=2", TEST_TOKENS.reader)).body
      .events as WorldEvent[];
    assert.ok(first && second);
    const live = openStream("");
    const replay = openStream(`?after=${first.id - 1}`);
    // A reconnecting browser's Last-Event-ID wins over ?after=.
    const resumed = openStream("?after=0", { "last-event-id": String(first.id) });
    try {
      await resumed.waitFor(new RegExp(`id: ${second.id}\\nevent: ${second.kind}\\n`));
      assert.doesNotMatch(resumed.text(), new RegExp(`id: ${first.id}\\n`));
      await live.waitFor(/: streaming events after \d+/);
      assert.equal(live.response()?.headers["content-type"], "text/event-stream; charset=utf-8");
      await replay.waitFor(new RegExp(`id: ${first.id}\\nevent: ${first.kind}\\ndata: `));
      assert.doesNotMatch(live.text(), new RegExp(`id: ${first.id}\\n`));

      const fenced = await call("POST", "/v1/cells/cell-3/fence", TEST_TOKENS.operator, {
        reason: "stream test",
      });
      const id = fenced.body.event.id as number;
      await live.waitFor(new RegExp(`id: ${id}\\nevent: cell.fenced\\ndata: .*"reason":"stream test"`));
      await replay.waitFor(new RegExp(`id: ${id}\\nevent: cell.fenced`));
    } finally {
      live.req.destroy();
      replay.req.destroy();
      resumed.req.destroy();
    }
    // Every stream lets go of their connection once the clients left.
    for (let i = 0; i < 200; i++) {
      const open = await new Promise<number>((resolve, reject) =>
        controller?.app.server.getConnections((err, n) => (err ? reject(err) : resolve(n))),
      );
      if (open === 0) break;
      await new Promise((r) => setTimeout(r, 10));
    }
    const open = await new Promise<number>((resolve, reject) =>
      controller?.app.server.getConnections((err, n) => (err ? reject(err) : resolve(n))),
    );
    assert.equal(open, 0);
    await call("POST", "/v1/cells/cell-3/unfence", TEST_TOKENS.operator, { reason: "stream test over" });
  });
});
