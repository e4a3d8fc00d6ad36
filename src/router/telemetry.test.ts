import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { TELEMETRY_LIMITS } from "../controller/schemas.js";
import type { TelemetryWindow } from "../world/contracts.js";
import {
  OTHER_TENANT,
  OVERFLOW,
  type RequestRecord,
  TELEMETRY_DEFAULTS,
  Telemetry,
  type TelemetryOptions,
} from "./telemetry.js";

function request(change: Partial<RequestRecord> = {}): RequestRecord {
  return {
    tenant: "t-1",
    cell: "cell-0",
    regionServed: "r1",
    service: "app",
    version: "v1",
    route: "GET /things/:id",
    status: 200,
    latencyMs: 12,
    retries: 0,
    ...change,
  };
}

/** A telemetry whose clock moves only when told. */
function telemetry(options: Partial<TelemetryOptions> = {}) {
  const clock = { nowMs: Date.parse("2030-01-01T00:00:00.000Z") };
  const t = new Telemetry({ router: "r1", now: () => clock.nowMs, ...options });
  return { t, clock };
}

const sum = (values: readonly { requests: number }[]): number => values.reduce((n, v) => n + v.requests, 0);

/** The series of `ringfence_router_requests_total` in a Prometheus exposition. */
const requestSeries = (text: string): string[] =>
  text.split("\n").filter((line) => line.startsWith("ringfence_router_requests_total{"));

describe("telemetry caps", () => {
  test("10,000 distinct routes with maxRows 100: at most 100 rows, every request counted once", () => {
    const { t } = telemetry({ maxRows: 100 });
    for (let i = 0; i < 10_000; i++) t.record(request({ route: `GET /r${i}`, tenant: `t-${i % 7}` }));
    const w = t.closeWindow();
    assert.ok(w.rows.length <= 100, `${w.rows.length} rows`);
    assert.equal(sum(w.rows), 10_000);
    // One service, cell, region, version and status: everything past the room folds into one row.
    const overflow = w.rows.filter((r) => r.route === OVERFLOW);
    assert.deepEqual(
      overflow.map((r) => [r.service, r.cell, r.regionServed, r.version, r.status]),
      [["app", "cell-0", "r1", "v1", 200]],
    );
    assert.equal(w.overflowRequests, sum(overflow));
    assert.equal(w.overflowRequests, 10_000 - (w.rows.length - 1));
    assert.equal(w.overflowTenantRequests, 0);
    // The next window starts empty, with all its room.
    t.record(request({ route: "GET /r1" }));
    const next = t.closeWindow();
    assert.deepEqual(
      next.rows.map((r) => [r.route, r.requests]),
      [["GET /r1", 1]],
    );
    assert.equal(next.overflowRequests, 0);
  });

  test("past the overflow rows' own room, requests fold into one row per status class", () => {
    const { t } = telemetry({ maxRows: 40 });
    // 40 cells × 3 statuses of 5xx and 2xx: more overflow rows than the cap holds.
    for (let i = 0; i < 4_000; i++) {
      t.record(request({ route: `GET /r${i}`, cell: `cell-${i % 40}`, status: [200, 503, 504][i % 3] }));
    }
    const w = t.closeWindow();
    assert.ok(w.rows.length <= 40, `${w.rows.length} rows`);
    assert.equal(sum(w.rows), 4_000);
    const last = w.rows.filter((r) => r.service === OVERFLOW);
    assert.deepEqual(last.map((r) => r.status).sort(), [200, 500]);
    for (const r of last)
      assert.deepEqual([r.route, r.cell, r.regionServed, r.version], Array(4).fill(OVERFLOW));
    assert.equal(w.overflowRequests, sum(w.rows.filter((r) => r.route === OVERFLOW)));
  });

  test("10,000 tenants with maxTenantRows 100: at most 100 tenant rows, every request counted once", () => {
    const { t } = telemetry({ maxTenantRows: 100 });
    for (let i = 0; i < 10_000; i++) {
      t.record(request({ tenant: `tenant-${i}`, cell: `cell-${i % 3}`, status: i % 10 === 0 ? 503 : 200 }));
    }
    const w = t.closeWindow();
    assert.ok(w.tenants.length <= 100, `${w.tenants.length} tenant rows`);
    assert.equal(sum(w.tenants), 10_000);
    assert.equal(
      w.tenants.reduce((n, r) => n + r.errors, 0),
      1_000,
    );
    const other = w.tenants.filter((r) => r.tenant === OTHER_TENANT);
    assert.deepEqual(other.map((r) => r.cell).sort(), ["cell-0", "cell-1", "cell-2"]);
    assert.equal(w.overflowTenantRequests, sum(other));
    assert.equal(w.overflowRequests, 0);
    assert.equal(sum(w.rows), 10_000);
  });

  test("Prometheus series are capped over the process's life; overflowed ones have route (overflow)", async () => {
    const { t } = telemetry({ maxSeries: 30 });
    for (let window = 0; window < 10; window++) {
      for (let i = 0; i < 100; i++) t.record(request({ route: `GET /w${window}/r${i}` }));
      t.closeWindow();
    }
    const series = requestSeries(await t.metrics());
    assert.ok(series.length <= 30, `${series.length} series`);
    const overflow = series.find((line) => line.includes(`route="${OVERFLOW}"`));
    assert.ok(overflow, series.join("\n"));
    // Every request is in some series.
    const total = series.reduce((n, line) => n + Number(line.split(" ").at(-1)), 0);
    assert.equal(total, 1_000);
  });

  test("the defaults are the controller's limits; a cap below 20 is refused naming the option", () => {
    assert.equal(TELEMETRY_DEFAULTS.maxRows, TELEMETRY_LIMITS.rows);
    assert.equal(TELEMETRY_DEFAULTS.maxTenantRows, TELEMETRY_LIMITS.tenants);
    assert.throws(
      () => telemetry({ maxRows: 5 }),
      /TelemetryOptions\.maxRows must be an integer of at least 20/,
    );
    assert.throws(() => telemetry({ maxTenantRows: 20.5 }), /TelemetryOptions\.maxTenantRows/);
    assert.throws(() => telemetry({ maxSeries: 0 }), /TelemetryOptions\.maxSeries/);
  });

  test("property: whatever the keys, rows and tenant rows stay within their caps and count each request once", () => {
    const name = (prefix: string, n: number) => fc.integer({ min: 0, max: n }).map((i) => `${prefix}${i}`);
    const record = fc.record({
      tenant: name("t-", 60),
      cell: name("cell-", 6),
      regionServed: name("r", 3),
      service: name("s", 3),
      version: name("v", 2),
      route: name("GET /", 30),
      status: fc.integer({ min: 0, max: 999 }),
      latencyMs: fc.double({ min: 0, max: 60_000, noNaN: true }),
      retries: fc.integer({ min: 0, max: 3 }),
    });
    fc.assert(
      fc.property(
        fc.integer({ min: 20, max: 60 }),
        fc.integer({ min: 20, max: 60 }),
        fc.array(record, { maxLength: 600 }),
        (maxRows, maxTenantRows, records) => {
          const { t } = telemetry({ maxRows, maxTenantRows, maxSeries: 20 });
          for (const r of records) t.record(r);
          const w = t.closeWindow();
          assert.ok(w.rows.length <= maxRows);
          assert.ok(w.tenants.length <= maxTenantRows);
          assert.equal(sum(w.rows), records.length);
          assert.equal(sum(w.tenants), records.length);
          assert.equal(
            w.rows.reduce((n, r) => n + r.retries, 0),
            records.reduce((n, r) => n + r.retries, 0),
          );
          assert.equal(
            w.tenants.reduce((n, r) => n + r.errors, 0),
            records.filter((r) => r.status >= 500).length,
          );
          assert.equal(w.overflowRequests, sum(w.rows.filter((r) => r.route === OVERFLOW)));
          assert.equal(w.overflowTenantRequests, sum(w.tenants.filter((r) => r.tenant === OTHER_TENANT)));
        },
      ),
      { numRuns: 200, interruptAfterTimeLimit: 20_000 },
    );
  });
});

describe("telemetry window identity", () => {
  test("window ids are unique across windows and across two instances of the same router", () => {
    const a = telemetry();
    const b = telemetry();
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      // Same router, same clock, even windows closed within one millisecond.
      a.t.record(request());
      b.t.record(request());
      ids.push(a.t.closeWindow().windowId, a.t.closeWindow().windowId, b.t.closeWindow().windowId);
      a.clock.nowMs += 10_000;
      b.clock.nowMs += 10_000;
    }
    assert.equal(new Set(ids).size, ids.length, ids.join("\n"));
    for (const id of ids) {
      assert.ok(id.startsWith("r1:"), id);
      assert.ok(id.length <= TELEMETRY_LIMITS.windowId, id);
    }
  });

  test("a window that failed to ship is shipped again with the same id, and is never empty in time", async () => {
    const attempts: string[] = [];
    const shipped: TelemetryWindow[] = [];
    let fail = true;
    const { t, clock } = telemetry({
      ship: async (window) => {
        attempts.push(window.windowId);
        if (fail) throw new Error("the answer was lost");
        shipped.push(window);
      },
    });
    t.record(request());
    await t.flush();
    assert.equal(shipped.length, 0);
    fail = false;
    clock.nowMs += 10_000;
    t.record(request({ status: 503 }));
    await t.flush();
    assert.deepEqual(
      shipped.map((w) => w.rows.map((r) => r.status)),
      [[200], [503]],
    );
    const [first, second] = shipped.map((w) => w.windowId);
    assert.notEqual(first, second);
    assert.deepEqual(attempts, [first, first, second], "the first window kept its id when shipped again");
    // Closed in the same millisecond as it opened: still a duration the controller accepts.
    t.record(request());
    assert.equal(t.closeWindow().windowMs, 1);
  });
});
