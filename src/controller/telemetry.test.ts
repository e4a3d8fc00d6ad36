import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { queryOnce } from "../lib/postgres.js";
import type { TestCluster } from "../lib/postgres-testing.js";
import { sampleTopology } from "../topology/testing.js";
import type { TelemetryRow, TelemetryWindow, TenantRow } from "../world/contracts.js";
import { buildLayout } from "../world/layout.js";
import type { Controller } from "./server.js";
import { TELEMETRY_PRUNE_EVERY_MS, TELEMETRY_RETENTION_MS } from "./telemetry-store.js";
import { ManualClock, startTestController, TEST_TOKENS } from "./testing.js";

/** A hung test fails alone, and `after` still stops PostgreSQL. */
const LIMIT = { timeout: 60_000 };
const topology = sampleTopology();
const layout = buildLayout(topology, 206);
const clock = new ManualClock();
const HOUR = 3_600_000;

let cluster: TestCluster | undefined;
let controller: Controller | undefined;
let fixture: Awaited<ReturnType<typeof startTestController>> | undefined;

before(async () => {
  fixture = await startTestController({
    topology,
    layout,
    clock,
  });
  cluster = fixture.cluster;
  controller = fixture.controller;
});

after(async () => {
  await fixture?.stop();
});

async function call(method: "GET" | "POST", url: string, token: string, payload?: unknown) {
  assert.ok(controller, "the controller did not start");
  const res = await controller.app.inject({
    method,
    url,
    headers: { authorization: `Bearer ${token}` },
    ...(payload === undefined ? {} : { payload: payload as object }),
  });
  return { status: res.statusCode, body: res.body === "" ? undefined : res.json() };
}

const post = (window: unknown, token: string = TEST_TOKENS.agent) =>
  call("POST", "/v1/telemetry", token, window);
const iso = (ms: number) => new Date(ms).toISOString();

function row(change: Partial<TelemetryRow> & { p?: number[] } = {}): TelemetryRow {
  const [p50 = 10, p95 = 20, p99 = 30, max = 40] = change.p ?? [];
  const { p: _p, ...rest } = change;
  return {
    service: "app",
    route: "GET /things/:id",
    cell: "cell-0",
    regionServed: "r1",
    version: "v1",
    status: 200,
    requests: 100,
    retries: 1,
    latencyMs: { p50, p95, p99, max, sum: 1_000 },
    ...rest,
  };
}

function tenant(change: Partial<TenantRow> = {}): TenantRow {
  return {
    tenant: "t-1",
    cell: "cell-0",
    service: "app",
    route: "GET /things/:id",
    requests: 10,
    errors: 0,
    ...change,
  };
}

/** Every window built here is another window: its own id. */
let windows = 0;

function window(startMs: number, change: Partial<TelemetryWindow> = {}): TelemetryWindow {
  return {
    router: "r1",
    windowId: `r1:${startMs}:${windows++}:test`,
    windowStart: iso(startMs),
    windowMs: 10_000,
    rows: [row()],
    tenants: [tenant()],
    ...change,
  };
}

async function count(table: "telemetry" | "tenant_telemetry" | "telemetry_windows"): Promise<number> {
  assert.ok(cluster);
  const rows = await queryOnce<{ n: string }>(
    cluster.primary.host,
    cluster.primary.port,
    `SELECT count(*) AS n FROM ${table}`,
  );
  return Number(rows[0]?.n);
}

describe("telemetry", LIMIT, () => {
  test("windows from several routers are returned aggregated; filters and ranges narrow them", async () => {
    const now = clock.nowMs;
    const start = now - 20_000;
    assert.equal(
      (await post(window(start, { rows: [row({ requests: 100, p: [10, 20, 30, 40] })] }))).status,
      204,
    );
    assert.equal(
      (
        await post(
          window(start, {
            router: "r2",
            rows: [
              row({ requests: 300, retries: 5, p: [20, 40, 60, 90], regionServed: "r1" }),
              row({ status: 503, requests: 7, cell: "cell-1" }),
              row({ service: "other", requests: 1 }),
            ],
            tenants: [tenant({ requests: 30, errors: 2 }), tenant({ tenant: "t-2", requests: 5, errors: 5 })],
          }),
        )
      ).status,
      204,
    );
    // An older window, outside a narrow range.
    assert.equal(
      (await post(window(now - 2 * HOUR + 60_000, { rows: [row({ requests: 1_000 })] }))).status,
      204,
    );

    const res = await call("GET", `/v1/telemetry?since=${iso(start)}`, TEST_TOKENS.reader);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(res.body.since, iso(start));
    assert.equal(res.body.until, null);
    assert.equal(res.body.truncated, false);
    const rows = res.body.rows as TelemetryRow[];
    assert.equal(rows.length, 3);
    const merged = rows.find((r) => r.service === "app" && r.status === 200 && r.cell === "cell-0");
    assert.deepEqual(merged, {
      service: "app",
      route: "GET /things/:id",
      cell: "cell-0",
      regionServed: "r1",
      version: "v1",
      status: 200,
      requests: 400,
      retries: 6,
      // Percentiles weighted by requests: (100 × 10 + 300 × 20) / 400 = 17.5, ...; max is the largest.
      latencyMs: { p50: 17.5, p95: 35, p99: 52.5, max: 90, sum: 2_000 },
    });

    const cell1 = (await call("GET", `/v1/telemetry?since=${iso(start)}&cell=cell-1`, TEST_TOKENS.reader))
      .body;
    assert.deepEqual(
      (cell1.rows as TelemetryRow[]).map((r) => [r.cell, r.status, r.requests]),
      [["cell-1", 503, 7]],
    );
    const other = (await call("GET", `/v1/telemetry?since=${iso(start)}&service=other`, TEST_TOKENS.agent))
      .body;
    assert.deepEqual(
      (other.rows as TelemetryRow[]).map((r) => r.requests),
      [1],
    );
    // The default range is the last hour; a wider one includes the older window.
    const lastHour = (await call("GET", "/v1/telemetry?service=app&cell=cell-0", TEST_TOKENS.reader)).body;
    assert.equal(lastHour.since, iso(now - HOUR));
    assert.equal((lastHour.rows as TelemetryRow[]).find((r) => r.status === 200)?.requests, 400);
    const wide = (
      await call(
        "GET",
        `/v1/telemetry?since=${iso(now - 3 * HOUR)}&service=app&cell=cell-0`,
        TEST_TOKENS.reader,
      )
    ).body;
    assert.equal((wide.rows as TelemetryRow[]).find((r) => r.status === 200)?.requests, 1_400);
    const before = (
      await call("GET", `/v1/telemetry?since=${iso(now - 3 * HOUR)}&until=${iso(start)}`, TEST_TOKENS.reader)
    ).body;
    assert.equal(before.until, iso(start));
    assert.deepEqual(
      (before.rows as TelemetryRow[]).map((r) => r.requests),
      [1_000],
    );
    // A since beyond the retention is clipped to it.
    const ancient = (await call("GET", `/v1/telemetry?since=${iso(now - 100 * HOUR)}`, TEST_TOKENS.reader))
      .body;
    assert.equal(ancient.since, iso(now - TELEMETRY_RETENTION_MS));

    const tenants = await call("GET", `/v1/telemetry/tenants?since=${iso(start)}`, TEST_TOKENS.reader);
    assert.equal(tenants.status, 200);
    // Most errors first; t-1 summed over both routers.
    assert.deepEqual(tenants.body.tenants, [
      tenant({ tenant: "t-2", requests: 5, errors: 5 }),
      tenant({ tenant: "t-1", requests: 40, errors: 2 }),
    ]);
    const one = await call(
      "GET",
      `/v1/telemetry/tenants?since=${iso(start)}&tenant=t-1&limit=1`,
      TEST_TOKENS.reader,
    );
    assert.deepEqual(one.body.tenants, [tenant({ tenant: "t-1", requests: 40, errors: 2 })]);
  });

  test("malformed windows and queries are refused naming the field", async () => {
    const start = clock.nowMs - 10_000;
    const good = window(start);
    const problem = async (payload: unknown, path: string, status = 400) => {
      const res = await post(payload);
      assert.equal(res.status, status, JSON.stringify(res.body));
      assert.equal(res.body.error.problems[0].path, path, JSON.stringify(res.body));
    };
    const { rows: _rows, ...withoutRows } = good;
    await problem(withoutRows, "body.rows");
    const { windowId: _windowId, ...withoutId } = good;
    await problem(withoutId, "body.windowId");
    await problem({ ...good, windowId: "" }, "body.windowId");
    await problem({ ...good, windowId: "x".repeat(501) }, "body.windowId");
    await problem({ ...good, overflowRequests: -1 }, "body.overflowRequests");
    await problem({ ...good, windowStart: "yesterday" }, "body.windowStart");
    await problem({ ...good, windowMs: 0 }, "body.windowMs");
    await problem({ ...good, rows: [row({ requests: -1 })] }, "body.rows[0].requests");
    await problem({ ...good, rows: [row(), row({ requests: 1.5 })] }, "body.rows[1].requests");
    await problem({ ...good, rows: [{ ...row(), status: "200" }] }, "body.rows[0].status");
    await problem({ ...good, rows: [row({ p: [-1, 2, 3, 4] })] }, "body.rows[0].latencyMs.p50");
    await problem({ ...good, rows: [{ ...row(), latencyMs: { p50: 1 } }] }, "body.rows[0].latencyMs.p95");
    await problem({ ...good, rows: [row({ route: "x".repeat(301) })] }, "body.rows[0].route");
    await problem({ ...good, tenants: [tenant({ tenant: "" })] }, "body.tenants[0].tenant");
    await problem({ ...good, tenants: [tenant({ errors: -2 })] }, "body.tenants[0].errors");
    await problem({ ...good, rows: Array.from({ length: 5_001 }, () => row()) }, "body.rows");
    await problem({ ...good, router: "r9" }, "body.router", 404);
    // Readers may not ship telemetry.
    assert.equal((await post(good, TEST_TOKENS.reader)).status, 403);

    for (const [query, path] of [
      ["since=yesterday", "querystring.since"],
      ["until=soon", "querystring.until"],
      ["service=", "querystring.service"],
      ["extra=1", "querystring.extra"],
      [`since=${iso(start)}&until=${iso(start - 1)}`, "querystring.until"],
    ]) {
      const res = await call("GET", `/v1/telemetry?${query}`, TEST_TOKENS.reader);
      assert.equal(res.status, 400, query);
      assert.equal(res.body.error.problems[0].path, path, query);
    }
    for (const limit of ["0", "1001", "x"]) {
      const res = await call("GET", `/v1/telemetry/tenants?limit=${limit}`, TEST_TOKENS.reader);
      assert.equal(res.status, 400, limit);
      assert.equal(res.body.error.problems[0].path, "querystring.limit");
    }
  });

  test("a full window (5,000 rows, 50,000 tenants, over 1 MiB) is accepted", async () => {
    const start = clock.nowMs - 5_000;
    const big = window(start, {
      router: "r3",
      rows: Array.from({ length: 5_000 }, (_, i) => row({ route: `GET /r${i}`, cell: "cell-3" })),
      tenants: Array.from({ length: 50_000 }, (_, i) => tenant({ tenant: `tenant-${i}`, cell: "cell-3" })),
    });
    assert.ok(JSON.stringify(big).length > 1024 * 1024);
    assert.equal((await post(big)).status, 204);
    const res = await call("GET", `/v1/telemetry?since=${iso(start)}&cell=cell-3`, TEST_TOKENS.reader);
    assert.equal(res.body.rows.length, 5_000);
  });

  test("a window shipped twice is stored once; the same id from another router is another window", async () => {
    const start = clock.nowMs - 15_000;
    const cell = "cell-5";
    const once = window(start, {
      rows: [row({ cell, requests: 70 }), row({ cell, route: "(overflow)", status: 503, requests: 3 })],
      tenants: [tenant({ cell, requests: 73, errors: 3 })],
      overflowRequests: 3,
      overflowTenantRequests: 0,
    });
    const before = await count("telemetry_windows");
    // The first answer was lost: the router ships the same window again, twice.
    for (let i = 0; i < 3; i++) assert.equal((await post(once)).status, 204);
    // Shipped twice at once: one transaction waits on the other's window id.
    const [a, b] = await Promise.all([post(once), post(once)]);
    assert.deepEqual([a.status, b.status], [204, 204]);
    assert.equal(await count("telemetry_windows"), before + 1);

    const read = async () => {
      const res = await call("GET", `/v1/telemetry?since=${iso(start)}&cell=${cell}`, TEST_TOKENS.reader);
      assert.equal(res.status, 200, JSON.stringify(res.body));
      // Sorted here: the database's collation may order punctuation otherwise.
      return (res.body.rows as TelemetryRow[]).map((r) => [r.route, r.status, r.requests]).sort();
    };
    assert.deepEqual(await read(), [
      ["(overflow)", 503, 3],
      ["GET /things/:id", 200, 70],
    ]);
    const tenants = await call(
      "GET",
      `/v1/telemetry/tenants?since=${iso(start)}&cell=${cell}`,
      TEST_TOKENS.reader,
    );
    assert.deepEqual(tenants.body.tenants, [tenant({ cell, requests: 73, errors: 3 })]);

    // Window ids are per router: another router's window with the same id is stored.
    assert.equal((await post({ ...once, router: "r2" })).status, 204);
    assert.deepEqual(await read(), [
      ["(overflow)", 503, 6],
      ["GET /things/:id", 200, 140],
    ]);
  });

  test("rows older than 24 hours are pruned, at most once a minute, by the injected clock", async () => {
    const before = { rows: await count("telemetry"), tenants: await count("tenant_telemetry") };
    assert.ok(before.rows > 0 && before.tenants > 0);
    // A day later, every window so far is older than the retention.
    clock.advance(TELEMETRY_RETENTION_MS + 1);
    const fresh = clock.nowMs - 10_000;
    // A window that started before the retention is not stored at all.
    assert.equal(
      (await post(window(clock.nowMs - TELEMETRY_RETENTION_MS - 1_000, { router: "r2" }))).status,
      204,
    );
    assert.equal(await count("telemetry"), 0, "pruned with the first window after a day");
    assert.equal(await count("tenant_telemetry"), 0);
    assert.equal(await count("telemetry_windows"), 0, "window ids are pruned with their rows");
    const prunedAt = clock.nowMs;
    assert.equal((await post(window(fresh))).status, 204);
    assert.equal(await count("telemetry"), 1);

    // 30 s before `fresh` leaves the retention a prune runs and keeps it.
    clock.nowMs = fresh + TELEMETRY_RETENTION_MS - 30_000;
    assert.ok(clock.nowMs - prunedAt >= TELEMETRY_PRUNE_EVERY_MS);
    assert.equal((await post(window(clock.nowMs - 1_000))).status, 204);
    assert.equal(await count("telemetry"), 2);
    // Once it left, within the minute nothing is pruned, but reads leave it out.
    clock.advance(TELEMETRY_PRUNE_EVERY_MS / 2 + 1);
    assert.equal((await post(window(clock.nowMs - 1_000))).status, 204);
    assert.equal(await count("telemetry"), 3);
    const all = await call("GET", `/v1/telemetry?since=${iso(0)}`, TEST_TOKENS.reader);
    assert.equal(
      (all.body.rows as TelemetryRow[]).reduce((n, r) => n + r.requests, 0),
      200,
    );
    // A minute after the last prune, the next window prunes it.
    clock.advance(TELEMETRY_PRUNE_EVERY_MS / 2);
    assert.equal((await post(window(clock.nowMs - 1_000))).status, 204);
    assert.equal(await count("telemetry"), 3, "the window of a day ago went, the new one came");
    assert.equal(await count("tenant_telemetry"), 3);
    assert.equal(await count("telemetry_windows"), 3);
  });
});
