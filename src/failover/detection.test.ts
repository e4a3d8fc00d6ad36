import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { judgePrimary, type PrimaryEvidence, type Probe } from "./detection.js";
import { detectionSettings } from "./settings.js";

const NOW = 1_000_000;
/** What the default `failover.detection: 3s` compiles to: 2 regions, 2 failures (1), 3 s fresh. */
const OPTIONS = detectionSettings(3_000);
const probe = (region: string, ok: boolean, consecutiveFailures = ok ? 0 : 2, ageMs = 500): Probe => ({
  observer: `${region}/a`,
  region,
  ok,
  consecutiveFailures,
  atMs: NOW - ageMs,
});
const evidence = (probes: Probe[], agent?: { databaseUp: boolean; ageMs?: number }): PrimaryEvidence => ({
  cell: "cell-0",
  primaryRegion: "r1",
  probes,
  agent: agent ? { databaseUp: agent.databaseUp, atMs: NOW - (agent.ageMs ?? 500) } : undefined,
});

test("observers in two other regions agree: failed, even while the primary's own agent says it is fine (a partitioned region)", () => {
  const v = judgePrimary(
    evidence([probe("r2", false), probe("r3", false)], { databaseUp: true }),
    NOW,
    OPTIONS,
  );
  assert.equal(v.state, "failed");
  assert.deepEqual(v.state === "failed" && [...v.regions].sort(), ["r2", "r3"]);
});

test("one observer region cut off while another reaches the primary: not failed", () => {
  assert.equal(
    judgePrimary(evidence([probe("r2", false), probe("r3", true)]), NOW, OPTIONS).state,
    "suspect",
  );
});

test("only one other region reporting: not failed (two are needed)", () => {
  assert.equal(judgePrimary(evidence([probe("r2", false)]), NOW, OPTIONS).state, "suspect");
});

test("the controller hears nothing fresh (it is the one cut off): not failed", () => {
  const stale = [probe("r2", false, 5, 10_000), probe("r3", false, 5, 10_000)];
  assert.notEqual(
    judgePrimary(evidence(stale, { databaseUp: false, ageMs: 10_000 }), NOW, OPTIONS).state,
    "failed",
  );
});

test("one failed probe each is enough when the primary's agent reports the database down", () => {
  const probes = [probe("r2", false, 1), probe("r3", false, 1)];
  assert.equal(judgePrimary(evidence(probes), NOW, OPTIONS).state, "suspect");
  assert.equal(judgePrimary(evidence(probes, { databaseUp: false }), NOW, OPTIONS).state, "failed");
});

test("a region counts only when all its fresh observers agree; probes from the primary's own region do not count", () => {
  const split = [probe("r2", false), { ...probe("r2", false, 1), observer: "r2/b" }, probe("r3", false)];
  assert.equal(judgePrimary(evidence(split), NOW, OPTIONS).state, "suspect");
  assert.equal(
    judgePrimary(evidence([probe("r1", false), probe("r2", false)]), NOW, OPTIONS).state,
    "suspect",
  );
});

const arbitraryProbe = fc.record({
  observer: fc.constantFrom("r1/a", "r2/a", "r2/b", "r3/a", "r4/a"),
  ok: fc.boolean(),
  consecutiveFailures: fc.nat({ max: 4 }),
  ageMs: fc.nat({ max: 6_000 }),
});

test("property: failed only with two agreeing other regions, never when any other region reaches it or nothing is fresh", () => {
  fc.assert(
    fc.property(fc.array(arbitraryProbe, { maxLength: 8 }), fc.boolean(), (raw, agentDown) => {
      const probes = raw.map((p) => ({
        observer: p.observer,
        region: p.observer.split("/")[0] as string,
        ok: p.ok,
        consecutiveFailures: p.ok ? 0 : p.consecutiveFailures,
        atMs: NOW - p.ageMs,
      }));
      const v = judgePrimary(evidence(probes, { databaseUp: !agentDown }), NOW, OPTIONS);
      const fresh = probes.filter((p) => p.region !== "r1" && NOW - p.atMs <= 3_000);
      if (fresh.some((p) => p.ok)) assert.notEqual(v.state, "failed");
      if (v.state === "failed") {
        assert.ok(new Set(fresh.map((p) => p.region)).size >= 2);
        for (const region of v.regions)
          for (const p of fresh.filter((q) => q.region === region)) assert.equal(p.ok, false);
      }
    }),
    { numRuns: 2_000 },
  );
});

test("start-up grace: a primary never seen up is suspect, not failed, until the grace runs out", () => {
  const failing = [probe("r2", false, 9), probe("r3", false, 9)];
  const inGrace = judgePrimary({ ...evidence(failing), startupGraceUntilMs: NOW + 1 }, NOW, OPTIONS);
  assert.equal(inGrace.state, "suspect");
  assert.match(inGrace.state === "suspect" ? inGrace.reason : "", /start-up grace/);
  assert.equal(
    judgePrimary({ ...evidence(failing), startupGraceUntilMs: NOW }, NOW, OPTIONS).state,
    "failed",
  );
  assert.equal(judgePrimary(evidence(failing), NOW, OPTIONS).state, "failed", "seen up: no grace");
});

/** Up to 8 observers' probes over four regions, each possibly a witness or not. */
const someProbes = fc.array(
  fc.record({
    region: fc.constantFrom("r1", "r2", "r3", "r4"),
    ok: fc.boolean(),
    consecutiveFailures: fc.integer({ min: 0, max: 10 }),
    ageMs: fc.integer({ min: 0, max: 6_000 }),
    witness: fc.constantFrom(true, false, undefined),
  }),
  { maxLength: 8 },
);

test("property: the start-up grace only ever turns a failed verdict into a suspect one, and only before it ends", () => {
  const probes = someProbes.map((ps) => ps.map(({ witness: _, ...p }) => p));
  fc.assert(
    fc.property(probes, fc.integer({ min: -5_000, max: 5_000 }), (ps, graceLeft) => {
      const e = evidence(ps.map((p) => probe(p.region, p.ok, p.ok ? 0 : p.consecutiveFailures, p.ageMs)));
      const without = judgePrimary(e, NOW, OPTIONS);
      const withGrace = judgePrimary({ ...e, startupGraceUntilMs: NOW + graceLeft }, NOW, OPTIONS);
      if (without.state !== "failed" || graceLeft <= 0) assert.deepEqual(withGrace, without);
      else assert.equal(withGrace.state, "suspect");
    }),
  );
});

test("observers that reach nothing else are no witnesses: every probe failing at once (a starved WAN) fails nothing over", () => {
  const blind = (region: string) => ({ ...probe(region, false, 9), witness: false });
  assert.equal(judgePrimary(evidence([blind("r2"), blind("r3")]), NOW, OPTIONS).state, "suspect");
  // One region's observers are witnesses, the other's are not: two regions are still needed.
  assert.equal(judgePrimary(evidence([probe("r2", false), blind("r3")]), NOW, OPTIONS).state, "suspect");
  // Both reach other regions' primaries: the region loss is declared.
  const seeing = (region: string) => ({ ...probe(region, false), witness: true });
  assert.equal(judgePrimary(evidence([seeing("r2"), seeing("r3")]), NOW, OPTIONS).state, "failed");
  // In a region, a blind observer is left out; its seeing neighbour decides for the region.
  const mixed = [seeing("r2"), { ...blind("r2"), observer: "r2/b", consecutiveFailures: 0 }, seeing("r3")];
  assert.equal(judgePrimary(evidence(mixed), NOW, OPTIONS).state, "failed");
});

test("property: probes of observers that are no witnesses never make a verdict failed that their absence would not", () => {
  fc.assert(
    fc.property(someProbes, fc.boolean(), (ps, agentDown) => {
      const all = ps.map((p, i) => ({
        ...probe(p.region, p.ok, p.ok ? 0 : p.consecutiveFailures, p.ageMs),
        observer: `${p.region}/${i}`,
        witness: p.witness,
      }));
      const agent = agentDown ? { databaseUp: false } : undefined;
      const withBlind = judgePrimary(evidence(all, agent), NOW, OPTIONS);
      const without = judgePrimary(
        evidence(
          all.filter((p) => p.witness !== false || p.ok),
          agent,
        ),
        NOW,
        OPTIONS,
      );
      if (withBlind.state === "failed") assert.equal(without.state, "failed");
    }),
  );
});
