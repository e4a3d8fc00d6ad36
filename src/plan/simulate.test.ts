import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { sampleTopology } from "../topology/testing.js";
import { compositeAvailability } from "./availability.js";
import { component, evaluate, series } from "./blocks.js";
import { buildModel, type CatalogEntry, type PlanModel } from "./model.js";
import { simulate } from "./simulate.js";

const DAY = 86_400_000;

/** A model with one scenario and one cell whose path is a simple chain of the given components. */
function chainModel(parts: { mtbfDays: number; mttrHours: number }[]): PlanModel {
  const base = buildModel(sampleTopology(undefined, 1));
  const catalog = new Map<string, CatalogEntry>();
  parts.forEach((p, i) => {
    const mtbfMs = p.mtbfDays * DAY;
    const mttrMs = p.mttrHours * 3_600_000;
    catalog.set(`c${i}`, {
      id: `c${i}`,
      kind: "instance",
      label: `c${i}`,
      availability: mtbfMs / (mtbfMs + mttrMs),
      mtbfMs,
      mttrMs,
    });
  });
  const block = series(
    "chain",
    parts.map((_, i) => component(`c${i}`)),
  );
  const first = base.scenarios[0];
  const cell = first?.cells[0]?.cell;
  if (!first || !cell) throw new Error("the sample has a scenario and a cell");
  return {
    ...base,
    catalog,
    scenarios: [{ ...first, cells: [{ cell: { ...cell, tenantShare: 1 }, block }] }],
  };
}

test("the simulation converges on the analytic figure for a simple chain", () => {
  fc.assert(
    fc.property(
      fc.array(
        fc.record({ mtbfDays: fc.integer({ min: 2, max: 30 }), mttrHours: fc.integer({ min: 1, max: 12 }) }),
        {
          minLength: 1,
          maxLength: 3,
        },
      ),
      fc.integer({ min: 1, max: 1_000_000 }),
      (parts, seed) => {
        const model = chainModel(parts);
        const scenario = model.scenarios[0]?.cells[0];
        assert.ok(scenario);
        const analytic = evaluate(scenario.block, (id) => model.catalog.get(id)?.availability ?? 0);
        const years = 500;
        const result = simulate(model, { years, seed });
        const simulated = result.scenarios[0]?.meanAvailability ?? 0;
        // A component's downtime over the run is a sum of about n exponential repairs, n itself
        // Poisson: its relative standard deviation is about sqrt(2 / n). The tolerance is 5 standard
        // deviations of the chain's downtime (under 10% of it here, with over 6,000 failures per
        // component): a correct simulator misses it about once in a million cases.
        const u = 1 - analytic;
        let variance = 0;
        for (const p of parts) {
          const ui = p.mttrHours / (p.mttrHours + p.mtbfDays * 24);
          const n = (years * 365) / (p.mtbfDays + p.mttrHours / 24);
          variance += (ui * ui * 2) / n;
        }
        const tolerance = 5 * Math.sqrt(variance);
        assert.ok(tolerance < 0.1 * u, `tolerance ${tolerance} for ${u}`);
        assert.ok(
          Math.abs(1 - simulated - u) <= tolerance,
          `simulated ${1 - simulated} vs analytic ${u} (tolerance ${tolerance})`,
        );
      },
    ),
    { numRuns: 12 },
  );
});

test("the simulation is reproducible from its seed and reports percentiles in order", () => {
  const model = buildModel(sampleTopology());
  const a = simulate(model, { years: 5, seed: 42 });
  const b = simulate(model, { years: 5, seed: 42 });
  assert.deepEqual(a, b);
  const c = simulate(model, { years: 5, seed: 43 });
  assert.notEqual(a.events, c.events);
  for (const s of a.scenarios) {
    assert.ok(s.p99 <= s.p50 && s.p50 <= 1, `${s.scenario}: p99 ${s.p99} p50 ${s.p50}`);
    assert.ok(s.tenantMinutesLostPerYear.mean >= 0);
  }
});

test("progress is reported once per simulated year", () => {
  const seen: number[] = [];
  simulate(buildModel(sampleTopology()), { years: 3, onProgress: (done) => seen.push(done) });
  assert.deepEqual(seen, [1, 2, 3]);
});

test("shared regions are simulated as one component: a long run agrees with the exact figure", () => {
  // A read path with a fallback in the same two regions: a region failure takes both down together.
  // Failures are made frequent so that a few hundred years give a tight estimate.
  const topology = sampleTopology((t) => {
    t.cells.replicas = 2;
    t.services[0].fallback = { command: "fallback", routes: ["GET /things/:id"] };
    t.components = {
      region: { mtbf: "20d", mttr: "1d" },
      zone: { mtbf: "1y", mttr: "1h" },
      database: { mtbf: "1y", mttr: "1h" },
      instance: { mtbf: "1y", mttr: "1m" },
      router: { mtbf: "1y", mttr: "1m" },
    };
  }, 1);
  const model = buildModel(topology);
  const exact = compositeAvailability(model).find((s) => s.scenario === "read");
  const sim = simulate(model, { years: 300, seed: 7 }).scenarios.find((s) => s.scenario === "read");
  assert.ok(exact && sim);
  const u = 1 - exact.availability;
  assert.ok(
    Math.abs(1 - sim.meanAvailability - u) <= 0.15 * u,
    `simulated ${1 - sim.meanAvailability} vs exact ${u}`,
  );
  // ...and the test can tell: treating each occurrence of a region as independent is far off.
  const cell = model.scenarios.find((s) => s.slo.scenario === "read")?.cells[0];
  assert.ok(cell);
  const independent = 1 - evaluate(cell.block, (id) => model.catalog.get(id)?.availability ?? 0);
  assert.ok(independent < 0.5 * u, `independent ${independent} too close to exact ${u}`);
});
