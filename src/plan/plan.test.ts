import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { loadTopology } from "../topology/load.js";
import { sampleTopology } from "../topology/testing.js";
import { blastRadius, cellFailureShare, cellsNeeded } from "./blast.js";
import { buildModel } from "./model.js";
import { failedGates, plan } from "./plan.js";
import { renderPlan } from "./render.js";

test("the bundled default topology passes every check", () => {
  const report = plan(loadTopology());
  assert.deepEqual(report.checks, { spof: true, objectives: true, capacity: true, availability: true });
  assert.equal(report.topology.cells, 4);
  assert.equal(report.topology.regions, 3);
  assert.equal(report.singlePointsOfFailure.length, 0);
  const signIn = report.availability.find((a) => a.scenario === "sign-in");
  assert.ok(signIn?.writes && signIn.worstCellAvailability > 0.9995);
  assert.ok(signIn.chain.some((l) => l.label.startsWith("write quorum: 2 of 3")));
  assert.equal(report.blastRadius.worstCellShare, 0.25);
});

test("blast radius: one cell failure reaches 1/N of tenants, and more cells never raise it", () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 1 << 16 }), fc.integer({ min: 1, max: 5000 }), (buckets, c) => {
      const cells = Math.min(c, buckets - 1) || 1;
      assert.ok(cellFailureShare(buckets, cells + 1) <= cellFailureShare(buckets, cells));
    }),
  );
  for (const cells of [1, 2, 3, 5, 8]) {
    const model = buildModel(sampleTopology(undefined, cells));
    const more = buildModel(sampleTopology(undefined, cells + 1));
    const worst = (m: typeof model) => blastRadius(m).units.find((u) => u.unit === "cell")?.lostTenants ?? 1;
    assert.ok(worst(more) <= worst(model), `${cells + 1} cells worse than ${cells}`);
  }
  assert.equal(blastRadius(buildModel(sampleTopology(undefined, 4))).worstCellShare, 0.25);
});

test("cells needed for a blast-radius target is the fewest that reach it", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 100_000 }),
      fc.double({ min: 0.0001, max: 1, noNaN: true }),
      (buckets, target) => {
        const cells = cellsNeeded(buckets, target);
        if (target * buckets >= 1) {
          assert.ok(cellFailureShare(buckets, cells) <= target + 1e-12, `${cells} cells miss ${target}`);
          if (cells > 1)
            assert.ok(cellFailureShare(buckets, cells - 1) > target, `${cells - 1} cells would do`);
        } else {
          assert.equal(cells, buckets);
        }
      },
    ),
  );
});

test("a region holds replicas of every cell but loses no tenant when cells span three regions", () => {
  const region = blastRadius(buildModel(sampleTopology())).units.find((u) => u.unit === "region");
  assert.equal(region?.exposedTenants, 1);
  assert.equal(region?.lostTenants, 0);
});

test("cells in one region: a region failure loses its tenants and is a single point of failure", () => {
  const report = plan(sampleTopology((t) => Object.assign(t.cells, { replicas: 1, syncQuorum: 0 }), 3));
  const region = report.blastRadius.units.find((u) => u.unit === "region");
  assert.ok(region && Math.abs(region.lostTenants - 1 / 3) < 0.01, `lost ${region?.lostTenants}`);
  assert.ok(report.singlePointsOfFailure.some((s) => s.kind === "region"));
  assert.equal(report.checks.spof, false);
  assert.deepEqual(failedGates(report, ["spof", "objectives"]), ["spof", "objectives"]);
  // Each cell's whole load now lands on its two instances in one region: a zone loss overloads them.
  assert.deepEqual(failedGates(report, ["capacity"]), ["capacity"]);
});

test("writes with no third region: the region is a SPOF for writes and the objectives say what is missing", () => {
  const report = plan(sampleTopology((t) => Object.assign(t.cells, { replicas: 2 })));
  const spofs = report.singlePointsOfFailure.filter((s) => s.kind === "region");
  assert.ok(spofs.length > 0);
  for (const s of spofs) {
    assert.deepEqual(s.scenarios, ["app/write"], "reads survive; only writes need the quorum");
    assert.match(s.fix, /replicas ≥ 3/);
  }
  const app = report.objectives.find((o) => o.service === "app");
  assert.equal(app?.writesSurviveRegionLoss, false);
  assert.equal(app?.rtoMet, false);
  assert.ok(app?.missing.some((m) => m.includes("replicas in ≥ 3 regions")));
});

test("one provider for a dependency is a SPOF; a second one removes it and never lowers availability", () => {
  const one = plan(
    sampleTopology((t) => {
      t.dependencies = [{ name: "pay", providers: [{ name: "p1", availability: 99.9 }] }];
      t.services[0].slos[0].dependencies = ["pay"];
    }),
  );
  const spof = one.singlePointsOfFailure.find((s) => s.component === "provider:pay/p1");
  assert.ok(spof);
  assert.deepEqual(spof.scenarios, ["app/write"]);
  assert.equal(spof.tenants, 1);
  const two = plan(
    sampleTopology((t) => {
      t.dependencies = [
        {
          name: "pay",
          providers: [
            { name: "p1", availability: 99.9 },
            { name: "p2", availability: 99.5, costPerMonth: 100 },
          ],
        },
      ];
      t.services[0].slos[0].dependencies = ["pay"];
    }),
  );
  assert.equal(two.checks.spof, true);
  const write = (r: typeof one) => r.availability.find((a) => a.scenario === "write")?.availability ?? 0;
  assert.ok(write(two) > write(one));
  assert.ok(two.cost.redundancies.some((r) => r.redundancy === "pay: provider p2" && r.worthIt === true));
});

test("a single notification provider is reported, without failing the request-path SPOF check", () => {
  const report = plan(
    sampleTopology((t) => {
      t.notifications = [
        { name: "hooks", kind: "webhook", providers: [{ name: "h1", url: "https://h1.example/x" }] },
      ];
    }),
  );
  assert.ok(report.singlePointsOfFailure.some((s) => s.component === "notification:hooks"));
  assert.equal(report.checks.spof, true);
});

test("capacity: fails when the survivors of a zone loss cannot carry the peak", () => {
  // 4 cells × 3 regions × 2 instances × 100 req/s; one cell-region carries peak/4/3.
  const fits = plan(sampleTopology((t) => Object.assign(t.services[0], { peakRps: 1_000 })));
  assert.equal(fits.checks.capacity, true);
  // 1,500 req/s: 125 per cell-region, fine with 2 instances (62%), not with 1 after a zone loss (125%).
  const tight = plan(sampleTopology((t) => Object.assign(t.services[0], { peakRps: 1_500 })));
  assert.equal(tight.checks.capacity, false);
  const app = tight.capacity.services[0];
  assert.ok(app && app.normal.maxUtilisation <= 1 && (app.worstZone?.maxUtilisation ?? 0) > 1);
  assert.ok((app.worstZone?.shortfall ?? 0) > 0);
  const unchecked = plan(sampleTopology((t) => delete t.services[0].peakRps));
  assert.deepEqual(unchecked.capacity.unchecked, ["app"]);
});

test("objectives: RPO 0 needs strict durability and synchronous commit; RTO needs fast failover", () => {
  const available = plan(sampleTopology((t) => Object.assign(t.services[0], { durability: "available" })));
  assert.equal(available.objectives[0]?.rpoMet, false);
  assert.ok(available.objectives[0]?.missing.some((m) => m.includes("durability: available")));
  const async = plan(sampleTopology((t) => Object.assign(t.cells, { syncQuorum: 0 })));
  assert.ok(async.objectives[0]?.missing.some((m) => m.includes("syncQuorum ≥ 1")));
  // A cell holds every service's data: one strict service keeps every cell strict (as the controller
  // applies it), so a service asking for `available` beside it still gets RPO 0 and a quorum.
  const mixed = sampleTopology((t) => {
    t.services.push({ ...t.services[0], name: "other", durability: "available" });
  });
  assert.equal(mixed.failover.durability, "strict");
  const mixedReport = plan(mixed);
  const other = mixedReport.objectives.find((o) => o.service === "other");
  const otherWrites = mixedReport.availability.find((a) => a.service === "other" && a.writes);
  assert.ok(otherWrites?.chain.some((l) => l.label.startsWith("write quorum: 2 of 3")));
  assert.equal(other?.rpoMet, true);
  assert.equal(other?.designRpoMs, 0);
  assert.ok(!other?.missing.some((m) => m.includes("durability: available")));
  const tightRto = plan(sampleTopology((t) => Object.assign(t.services[0], { rto: "2s" })));
  assert.equal(tightRto.objectives[0]?.rtoMet, false);
  assert.equal(tightRto.checks.objectives, false);
});

test("the text report shows every section and the verdicts", () => {
  const text = renderPlan(plan(loadTopology(), { simulateYears: 2 }));
  for (const heading of [
    "1. Composite",
    "2. Blast radius",
    "3. Single points",
    "4. Capacity",
    "5. Objectives",
    "6. Business",
    "7. Monte Carlo",
  ]) {
    assert.ok(text.includes(heading), heading);
  }
  assert.match(text, /costs the most nines/);
  assert.match(text, /Checks: spof ✓ {2}objectives ✓ {2}capacity ✓ {2}availability ✓/);
});

test("objectives.blastRadius is gated with the objectives", () => {
  const withTarget = (cells: number) =>
    plan(sampleTopology((t) => Object.assign(t, { objectives: { blastRadius: "10%" } }), cells));
  const report = withTarget(4);
  assert.equal(report.checks.objectives, false, "4 cells put 25% of tenants in one cell");
  // 4,096 buckets over 10 cells put 410 (10.01%) in the largest: 11 cells are needed.
  assert.equal(report.blastRadius.cellsForTarget[0]?.cells, 11);
  assert.equal(withTarget(10).checks.objectives, false);
  assert.equal(withTarget(11).checks.objectives, true);
});
