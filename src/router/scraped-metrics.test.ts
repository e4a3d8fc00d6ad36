/** The scrape-time counter and histogram render what prom-client's own would. */
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { Histogram, Registry } from "prom-client";
import { ScrapedCounter, ScrapedHistogram } from "./scraped-metrics.js";

const BOUNDS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1];

test("a counter's series are read at scrape time", async () => {
  const registry = new Registry();
  const c = new ScrapedCounter(registry, "x_total", "some requests");
  const a = c.series({ route: "GET /a", status: "200" });
  const b = c.series({ route: "GET /b", status: "503" });
  a.value += 3;
  b.value++;
  const text = await registry.metrics();
  assert.match(text, /# TYPE x_total counter/);
  assert.match(text, /^x_total\{route="GET \/a",status="200"\} 3$/m);
  assert.match(text, /^x_total\{route="GET \/b",status="503"\} 1$/m);
  a.value++;
  assert.match(await registry.metrics(), /^x_total\{route="GET \/a",status="200"\} 4$/m);
});

test("a histogram renders the same exposition as prom-client's Histogram for any observations", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.tuple(fc.constantFrom("a", "b"), fc.double({ min: 0, max: 3, noNaN: true })), {
        maxLength: 60,
      }),
      async (observations) => {
        const ours = new Registry();
        const theirs = new Registry();
        const h = new ScrapedHistogram(ours, "d_seconds", "durations", BOUNDS);
        const p = new Histogram({
          name: "d_seconds",
          help: "durations",
          labelNames: ["route"],
          buckets: BOUNDS,
          registers: [theirs],
        });
        for (const [route, v] of observations) {
          h.series({ route }).observe(v);
          p.observe({ route }, v);
        }
        const lines = async (r: Registry) => (await r.metrics()).split("\n").sort();
        assert.deepEqual(await lines(ours), await lines(theirs));
      },
    ),
    { numRuns: 100 },
  );
});

test("series with the same labels are one series", () => {
  const h = new ScrapedHistogram(new Registry(), "d_seconds", "durations", BOUNDS);
  assert.equal(h.series({ service: "s", route: "r" }), h.series({ route: "r", service: "s" }));
});
