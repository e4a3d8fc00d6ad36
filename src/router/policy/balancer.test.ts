import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { Random } from "../../lib/random.js";
import { BalancerState, chooseRetryTarget, chooseUpstream, type UpstreamCandidate } from "./balancer.js";

function c(id: string, region: string, zone: string, outstanding = 0): UpstreamCandidate {
  return { id, region, zone, outstanding };
}

const WORLD: UpstreamCandidate[] = [
  c("e1", "us-east", "a", 3),
  c("e2", "us-east", "b", 1),
  c("e3", "us-east", "c", 2),
  c("w1", "us-west", "a", 0),
  c("w2", "us-west", "b", 0),
  c("eu1", "eu-west", "a", 0),
];

test("picks the least outstanding in the nearest region, not a less loaded farther one", () => {
  assert.equal(chooseUpstream(WORLD, new BalancerState())?.id, "e2");
});

test("skips excluded ids given as a set or a predicate and falls to the next region", () => {
  const state = new BalancerState();
  assert.equal(chooseUpstream(WORLD, state, { exclude: new Set(["e2"]) })?.id, "e3");
  const downEast = (_id: string, u: UpstreamCandidate): boolean => u.region === "us-east";
  assert.ok(["w1", "w2"].includes(chooseUpstream(WORLD, state, { exclude: downEast })?.id ?? ""));
  assert.equal(chooseUpstream(WORLD, state, { exclude: () => true }), undefined);
  assert.equal(chooseUpstream([], state), undefined);
});

test("ties rotate, so equal load spreads round-robin", () => {
  const state = new BalancerState();
  const equal = [c("a", "r", "z1"), c("b", "r", "z2"), c("c", "r", "z3"), c("x", "far", "z1")];
  const picks = Array.from({ length: 6 }, () => chooseUpstream(equal, state)?.id);
  assert.deepEqual(picks, ["a", "b", "c", "a", "b", "c"]);
});

test("retry: never a tried id; another zone of the same region first, then another region, then the same zone", () => {
  const state = new BalancerState();
  const cands = [
    c("e1", "us-east", "a", 0),
    c("e1b", "us-east", "a", 0),
    c("e2", "us-east", "b", 5),
    c("w1", "us-west", "a", 0),
  ];
  const previous = { region: "us-east", zone: "a" };
  assert.equal(chooseRetryTarget(cands, state, { tried: ["e1"], previous })?.id, "e2");
  assert.equal(chooseRetryTarget(cands, state, { tried: new Set(["e1", "e2"]), previous })?.id, "w1");
  assert.equal(
    chooseRetryTarget(cands, state, { tried: ["e1", "e2"], previous, exclude: new Set(["w1"]) })?.id,
    "e1b",
    "the previous zone is the last resort",
  );
  assert.equal(chooseRetryTarget(cands, state, { tried: ["e1", "e1b", "e2", "w1"], previous }), undefined);
  // Zones named alike in different regions are different zones.
  assert.equal(
    chooseRetryTarget([c("e1", "us-east", "a"), c("w1", "us-west", "a")], state, { tried: ["e1"], previous })
      ?.id,
    "w1",
  );
});

test("p2c picks the less loaded of two random candidates in the nearest region", () => {
  const rnd = new Random(7);
  const state = new BalancerState({ random: () => rnd.next() });
  const cands = [c("busy", "r", "a", 100), c("idle", "r", "b", 0), c("far", "x", "a", 0)];
  for (let i = 0; i < 50; i++) assert.equal(chooseUpstream(cands, state, { p2c: true })?.id, "idle");
  assert.equal(chooseUpstream([c("only", "r", "a", 9)], state, { p2c: true })?.id, "only");
  const broken = new BalancerState({ random: () => Number.NaN });
  assert.ok(chooseUpstream(cands, broken, { p2c: true }));
});

const candidatesArb = fc
  .array(
    fc.record({
      region: fc.integer({ min: 0, max: 3 }),
      zone: fc.constantFrom("a", "b", "c"),
      outstanding: fc.integer({ min: 0, max: 4 }),
      excluded: fc.boolean(),
      tried: fc.boolean(),
    }),
    { maxLength: 16 },
  )
  .map((rows) =>
    // Ordered by region preference, as the router hands them over.
    [...rows]
      .sort((x, y) => x.region - y.region)
      .map((r, i) => ({
        ...c(`u${i}`, `r${r.region}`, r.zone, r.outstanding),
        excluded: r.excluded,
        tried: r.tried,
      })),
  );

test("property: never an excluded or tried id, never a farther region while a nearer one is eligible", () => {
  fc.assert(
    fc.property(
      candidatesArb,
      fc.boolean(),
      fc.boolean(),
      fc.nat(1000),
      fc.option(fc.record({ region: fc.constantFrom("r0", "r1"), zone: fc.constantFrom("a", "b") })),
      (cands, p2c, asPredicate, seed, previous) => {
        const rnd = new Random(seed);
        const state = new BalancerState({ random: () => rnd.next(), start: seed });
        const excludedIds = new Set(cands.filter((x) => x.excluded).map((x) => x.id));
        const exclude = asPredicate ? (id: string) => excludedIds.has(id) : excludedIds;
        const rank = (u: { region: string }) => Number(u.region.slice(1));

        const first = chooseUpstream(cands, state, { exclude, p2c });
        const eligible = cands.filter((x) => !x.excluded);
        if (eligible.length === 0) assert.equal(first, undefined);
        else {
          assert.ok(first && !first.excluded);
          const nearest = Math.min(...eligible.map(rank));
          assert.equal(rank(first), nearest, "nearest region with an eligible candidate");
          if (!p2c) {
            const least = Math.min(...eligible.filter((x) => rank(x) === nearest).map((x) => x.outstanding));
            assert.equal(first.outstanding, least, "least outstanding in that region");
          }
        }

        const tried = cands.filter((x) => x.tried).map((x) => x.id);
        const retry = chooseRetryTarget(cands, state, {
          exclude,
          p2c,
          tried,
          previous: previous ?? undefined,
        });
        const open = eligible.filter((x) => !x.tried);
        if (open.length === 0) assert.equal(retry, undefined);
        else {
          assert.ok(retry && !retry.excluded && !retry.tried);
          const sameZone = (x: UpstreamCandidate) =>
            previous !== null && x.region === previous.region && x.zone === previous.zone;
          const elsewhere = open.filter((x) => !sameZone(x));
          const pool = elsewhere.length > 0 ? elsewhere : open;
          assert.ok(elsewhere.length === 0 || !sameZone(retry), "another zone when one is eligible");
          assert.equal(rank(retry), Math.min(...pool.map(rank)), "nearest region among the preferred");
        }
      },
    ),
    { numRuns: 300 },
  );
});

test("property: with equal outstanding counts, picks spread evenly (rotation and p2c)", () => {
  fc.assert(
    fc.property(fc.integer({ min: 2, max: 8 }), fc.boolean(), fc.nat(10_000), (size, p2c, seed) => {
      const rnd = new Random(seed);
      const state = new BalancerState({ random: () => rnd.next(), start: seed });
      const cands = Array.from({ length: size }, (_, i) => c(`u${i}`, "r0", `z${i % 3}`, 2));
      cands.push(c("far", "r1", "a", 0));
      const counts = new Map<string, number>();
      const calls = 4000;
      for (let i = 0; i < calls; i++) {
        const id = chooseUpstream(cands, state, { p2c })?.id ?? "none";
        counts.set(id, (counts.get(id) ?? 0) + 1);
      }
      assert.equal(counts.get("far"), undefined);
      const expected = calls / size;
      for (let i = 0; i < size; i++) {
        const got = counts.get(`u${i}`) ?? 0;
        // Rotation is exact (±1); p2c is random, so allow ±25% (far beyond 5 standard deviations).
        assert.ok(Math.abs(got - expected) <= (p2c ? expected * 0.25 : 1), `u${i}: ${got} vs ${expected}`);
      }
    }),
    { numRuns: 50 },
  );
});
