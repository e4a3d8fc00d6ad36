/**
 * Readiness: which requests prove a service serves, and how waiting for them ends, against stand-in
 * routers on the layout's router addresses (127.168.x.1:8080; 168 is used by no other test).
 */
import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import { after, describe, test } from "node:test";
import { isRingfenceError, type Problem } from "../lib/errors.js";
import { loadTopology } from "../topology/load.js";
import { sampleTopology } from "../topology/testing.js";
import { buildLayout } from "./layout.js";
import { probeTenants, readinessProbes, type UnservedPair, waitUntilServing } from "./readiness.js";

test("the bundled demo is probed on its health path", () => {
  assert.deepEqual(readinessProbes(loadTopology()), [{ path: "/healthz", service: "directory" }]);
});

test("each distinct health path is probed, judging the service the router sends it to", () => {
  const topology = sampleTopology((d) => {
    d.services[0].health = "/health";
    d.services.push(
      {
        name: "admin",
        command: "admin",
        health: "/admin/health",
        instances: 1,
        slos: [{ scenario: "admin", routes: ["GET /admin/:x"], availability: 99, latency: "1s" }],
      },
      {
        // Its health path is one of app's routes: the router sends it to app, so app is judged.
        name: "late",
        command: "late",
        health: "/things/health",
        instances: 1,
        slos: [{ scenario: "late", routes: ["GET /late"], availability: 99, latency: "1s" }],
      },
      {
        name: "same",
        command: "same",
        health: "/health",
        instances: 1,
        slos: [{ scenario: "same", routes: ["GET /same"], availability: 99, latency: "1s" }],
      },
    );
  }, 2);
  assert.deepEqual(readinessProbes(topology), [
    { path: "/health", service: "app" },
    { path: "/admin/health", service: "admin" },
    { path: "/things/health", service: "app" },
  ]);
});

describe("waiting for every router to serve every cell", () => {
  const topology = sampleTopology((d) => {
    d.services[0].health = "/ready";
  }, 2);
  const layout = buildLayout(topology, 168);
  const cellOf = new Map(probeTenants(topology).map((p) => [p.tenant, p.cell]));
  /** What each stand-in router answers, by region and cell; it records what it was asked. */
  type Answer = { status: number; servedBy?: string; body?: unknown };
  const answers = new Map<string, Answer>();
  const asked: string[] = [];
  const servers: Server[] = [];
  after(async () => {
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  });

  async function standInRouter(region: string): Promise<void> {
    const r = layout.regions.find((x) => x.name === region);
    if (!r) throw new Error(region);
    const server = createServer((req, res) => {
      const cell = cellOf.get(String(req.headers["x-tenant"])) ?? "none";
      asked.push(`${region} ${cell} ${req.method} ${req.url}`);
      const answer = answers.get(`${region}/${cell}`) ?? { status: 200, servedBy: `app/${cell}/${region}/0` };
      res.writeHead(answer.status, {
        "content-type": "application/json",
        ...(answer.servedBy ? { "x-ringfence-served-by": answer.servedBy } : {}),
      });
      res.end(JSON.stringify(answer.body ?? { status: "ok" }));
    });
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(r.router.port, r.router.host, resolve));
  }

  test("resolves once every pair answers its health path healthily", async () => {
    await standInRouter("r1");
    await standInRouter("r2");
    await standInRouter("r3");
    const progress: string[] = [];
    await waitUntilServing(layout, topology, {
      timeoutMs: 60_000,
      logs: "/nowhere",
      progress: (line) => progress.push(line),
      explain: () => assert.fail("nothing to explain"),
    });
    assert.deepEqual(progress, ["serving: 6/6 (region, cell) pairs answer through their router"]);
    assert.deepEqual(
      [...asked].sort(),
      ["r1", "r2", "r3"].flatMap((r) => ["cell-0", "cell-1"].map((c) => `${r} ${c} GET /ready`)),
    );
  });

  test("gives up naming each pair without a healthy answer, what it got, and what explain found", async () => {
    answers.set("r2/cell-0", {
      status: 503,
      body: {
        error: { code: "RINGFENCE_NO_HEALTHY_INSTANCE", message: "no healthy instance of app in cell-0" },
      },
    });
    // Served, but by the fallback: the service itself does not serve.
    answers.set("r2/cell-1", { status: 200, servedBy: "app-fallback/cell-1/r2/0" });
    answers.set("r1/cell-1", { status: 500, servedBy: "app/cell-1/r1/0", body: { oops: true } });
    const explained: UnservedPair[][] = [];
    const why: Problem = { path: "r2/cell-0", file: "/logs/agent-r2-a.log", line: 7, message: "exited" };
    const failure = await waitUntilServing(layout, topology, {
      timeoutMs: 600,
      logs: "/var/logs-of-the-world",
      progress: () => {},
      explain: (unserved) => {
        explained.push([...unserved]);
        return [why];
      },
    }).then(
      () => assert.fail("it should give up"),
      (err: unknown) => err,
    );
    assert.ok(isRingfenceError(failure), String(failure));
    assert.equal(failure.code, "RINGFENCE_WORLD_START_FAILED");
    assert.match(failure.message, /3 of 6 \(region, cell\) pairs got no healthy answer/);
    assert.match(failure.message, /r1\/cell-1, r2\/cell-0, r2\/cell-1\./);
    assert.match(failure.message, /\/var\/logs-of-the-world/);
    assert.deepEqual(
      explained.map((pairs) => pairs.map((p) => `${p.region}/${p.cell}`)),
      [["r1/cell-1", "r2/cell-0", "r2/cell-1"]],
    );
    const byPair = new Map(
      failure.problems.filter((p) => p.file === undefined).map((p) => [p.path, p.message]),
    );
    assert.match(
      byPair.get("r1/cell-1") ?? "",
      /answered 500 from app\/cell-1\/r1\/0 to GET \/ready: \{"oops":true\}/,
    );
    assert.match(
      byPair.get("r2/cell-0") ?? "",
      /answered 503 to GET \/ready: RINGFENCE_NO_HEALTHY_INSTANCE: no healthy instance of app in cell-0/,
    );
    assert.match(byPair.get("r2/cell-1") ?? "", /answered 200 from app-fallback\/cell-1\/r2\/0/);
    assert.ok(failure.problems.includes(why), "the explanation is listed");
  });

  test("a router that does not answer is named with the connection error; a stop ends the wait at once", async () => {
    answers.clear();
    const r3 = servers.pop();
    await new Promise((r) => r3?.close(r));
    const failure = await waitUntilServing(layout, topology, {
      timeoutMs: 600,
      logs: "/logs",
      progress: () => {},
      explain: () => [],
    }).catch((err: unknown) => err);
    assert.ok(isRingfenceError(failure));
    assert.match(failure.message, /2 of 6 .*: r3\/cell-0, r3\/cell-1\./);
    assert.match(
      failure.problems[0]?.message ?? "",
      /router of r3 answered nothing to GET \/ready \(ECONNREFUSED\)/,
    );

    const stop = new AbortController();
    const waiting = waitUntilServing(layout, topology, {
      timeoutMs: 3_600_000,
      logs: "/logs",
      signal: stop.signal,
      progress: () => {},
      explain: () => [],
    });
    const reason = new Error("stopping");
    stop.abort(reason);
    await assert.rejects(waiting, (err) => err === reason);
  });
});
