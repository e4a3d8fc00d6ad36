import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { type BalancedUpstream, chooseUpstream, Rotation } from "./balancer.js";

interface U extends BalancedUpstream {
  readonly region: string;
}

function u(id: string, region: string, zone: string, outstanding = 0): U {
  return { slot: { id, zone: `${region}/${zone}` }, region, outstanding };
}

const NONE: ReadonlySet<string> = new Set();

/** Regions in order of preference, each a group, as Upstreams.eligible hands them over. */
const WORLD: U[][] = [
  [u("e1", "us-east", "a", 3), u("e2", "us-east", "b", 1), u("e3", "us-east", "c", 2)],
  [u("w1", "us-west", "a", 0), u("w2", "us-west", "b", 0)],
  [u("eu1", "eu-west", "a", 0)],
];

const pick = (
  groups: U[][],
  tried: Iterable<string> = [],
  previousZone?: string,
  rotation = new Rotation(),
) => chooseUpstream(groups, new Set(tried), previousZone, rotation)?.slot.id;

test("picks the least outstanding in the nearest region, not a less loaded farther one", () => {
  assert.equal(pick(WORLD), "e2");
});

test("goes to the next region only once every candidate of the nearer one was tried", () => {
  assert.equal(pick(WORLD, ["e2"]), "e3");
  assert.ok(["w1", "w2"].includes(pick(WORLD, ["e1", "e2", "e3"]) ?? ""));
  assert.equal(pick(WORLD, ["e1", "e2", "e3", "w1", "w2"]), "eu1");
  assert.equal(pick(WORLD, ["e1", "e2", "e3", "w1", "w2", "eu1"]), undefined);
  assert.equal(pick([]), undefined);
  assert.equal(pick([[], [u("x", "r", "a")]]), "x");
});

test("ties rotate, so equal load spreads round-robin", () => {
  const rotation = new Rotation();
  const equal = [[u("a", "r", "z1"), u("b", "r", "z2"), u("c", "r", "z3")], [u("x", "far", "z1")]];
  const picks = Array.from({ length: 6 }, () => pick(equal, [], undefined, rotation));
  assert.deepEqual(picks, ["a", "b", "c", "a", "b", "c"]);
});

test("retry: never a tried id; on equal load another zone than the previous try's, but load comes first", () => {
  const groups = [
    [u("e1", "us-east", "a", 0), u("e1b", "us-east", "a", 0), u("e2", "us-east", "b", 0)],
    [u("w1", "us-west", "a", 0)],
  ];
  // Whatever the rotation, the other zone wins the tie.
  for (let start = 0; start < 6; start++)
    assert.equal(pick(groups, ["e1"], "us-east/a", new Rotation(start)), "e2", `rotation ${start}`);
  // A less loaded instance in the previous zone beats a busier one elsewhere.
  const busier = [[u("e1", "us-east", "a", 0), u("e1b", "us-east", "a", 0), u("e2", "us-east", "b", 1)]];
  assert.equal(pick(busier, ["e1"], "us-east/a"), "e1b");
  // The same region's last untried instance, even in the previous zone, before another region.
  assert.equal(pick(groups, ["e1", "e2"], "us-east/a"), "e1b");
  // Zones named alike in different regions are different zones.
  assert.equal(pick([[u("w1", "us-west", "a"), u("w2", "us-west", "b")]], [], "us-east/a"), "w1");
});

const groupsArb = fc
  .array(
    fc.array(
      fc.record({
        zone: fc.constantFrom("a", "b", "c"),
        outstanding: fc.integer({ min: 0, max: 4 }),
        tried: fc.boolean(),
      }),
      { maxLength: 6 },
    ),
    { maxLength: 4 },
  )
  .map((regions) =>
    regions.map((rows, r) =>
      rows.map((row, i) => ({ ...u(`u${r}-${i}`, `r${r}`, row.zone, row.outstanding), tried: row.tried })),
    ),
  );

test("property: never a tried id, never a farther region while a nearer one has an untried candidate, least loaded, another zone on a tie", () => {
  fc.assert(
    fc.property(
      groupsArb,
      fc.option(fc.constantFrom("r0/a", "r0/b", "r1/a")),
      fc.nat(1000),
      (groups, previousZone, start) => {
        const tried = new Set(
          groups
            .flat()
            .filter((x) => x.tried)
            .map((x) => x.slot.id),
        );
        const chosen = chooseUpstream(groups, tried, previousZone ?? undefined, new Rotation(start));
        const nearest = groups.find((g) => g.some((x) => !x.tried));
        if (nearest === undefined) return assert.equal(chosen, undefined);
        assert.ok(chosen && !chosen.tried, "an untried candidate");
        assert.ok(nearest.includes(chosen), "from the nearest region with an untried candidate");
        const open = nearest.filter((x) => !x.tried);
        const least = Math.min(...open.map((x) => x.outstanding));
        assert.equal(chosen.outstanding, least, "the least outstanding there");
        const elsewhere = open.some((x) => x.outstanding === least && x.slot.zone !== previousZone);
        assert.ok(
          !elsewhere || chosen.slot.zone !== previousZone,
          "another zone than the previous try's on a tie",
        );
      },
    ),
    { numRuns: 500 },
  );
});

test("property: with equal outstanding counts, picks spread evenly", () => {
  fc.assert(
    fc.property(fc.integer({ min: 2, max: 8 }), fc.nat(10_000), (size, start) => {
      const rotation = new Rotation(start);
      const group = Array.from({ length: size }, (_, i) => u(`u${i}`, "r0", `z${i % 3}`, 2));
      const groups = [group, [u("far", "r1", "a", 0)]];
      const counts = new Map<string, number>();
      const calls = 4000;
      for (let i = 0; i < calls; i++) {
        const id = chooseUpstream(groups, NONE, undefined, rotation)?.slot.id ?? "none";
        counts.set(id, (counts.get(id) ?? 0) + 1);
      }
      assert.equal(counts.get("far"), undefined);
      const expected = calls / size;
      for (let i = 0; i < size; i++) {
        const got = counts.get(`u${i}`) ?? 0;
        // Rotation is exact: every candidate is first in turn.
        assert.ok(Math.abs(got - expected) <= 1, `u${i}: ${got} vs ${expected}`);
      }
    }),
    { numRuns: 50 },
  );
});
