import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { decideFailover, parseQuorum, type StandbyPosition } from "./decision.js";

const names = ["s-r2", "s-r3", "s-r4"];
const regionOf = (n: string) => n.slice(2);

test("every quorum standby answered: promote the one furthest ahead", () => {
  const d = decideFailover({
    quorum: { k: 1, names: ["s-r2", "s-r3"] },
    standbys: [
      { name: "s-r2", region: "r2", flushLsn: 100n },
      { name: "s-r3", region: "r3", flushLsn: 120n },
    ],
    preference: ["r2", "r3"],
  });
  assert.equal(d.kind, "promote");
  assert.equal(d.kind === "promote" && d.target.name, "s-r3");
});

test("ties go to the preferred region", () => {
  const d = decideFailover({
    quorum: { k: 1, names: ["s-r2", "s-r3"] },
    standbys: [
      { name: "s-r3", region: "r3", flushLsn: 100n },
      { name: "s-r2", region: "r2", flushLsn: 100n },
    ],
    preference: ["r2", "r3"],
  });
  assert.equal(d.kind === "promote" && d.target.region, "r2");
});

test("a quorum standby missing with ANY 1 of 2: consent, unless the old primary confirmed its position", () => {
  const standbys: StandbyPosition[] = [
    { name: "s-r2", region: "r2", flushLsn: undefined },
    { name: "s-r3", region: "r3", flushLsn: 90n },
  ];
  const quorum = { k: 1, names: ["s-r2", "s-r3"] };
  const d = decideFailover({ quorum, standbys, preference: [] });
  assert.equal(d.kind, "await-consent");
  assert.match(d.kind === "await-consent" ? d.reason : "", /s-r2 did not/);
  const confirmed = decideFailover({ quorum, standbys, preference: [], oldPrimaryFlush: 90n });
  assert.equal(confirmed.kind === "promote" && confirmed.basis, "old-primary");
  assert.match(confirmed.kind === "promote" ? confirmed.proof : "", /fenced old primary confirmed .*0\/5A/);
  // Both standbys answering: the quorum proves it, whatever the old primary said.
  const both = standbys.map((s) => ({ ...s, flushLsn: 90n }));
  const quorumProof = decideFailover({ quorum, standbys: both, preference: [], oldPrimaryFlush: 90n });
  assert.equal(quorumProof.kind === "promote" && quorumProof.basis, "quorum");
  assert.equal(
    decideFailover({ quorum, standbys, preference: [], oldPrimaryFlush: 91n }).kind,
    "await-consent",
  );
});

test("ANY 2 of 3: two answers are enough (n - k + 1), one is not", () => {
  const quorum = { k: 2, names };
  const two = decideFailover({
    quorum,
    standbys: [
      { name: "s-r2", region: "r2", flushLsn: 5n },
      { name: "s-r3", region: "r3", flushLsn: 7n },
      { name: "s-r4", region: "r4", flushLsn: undefined },
    ],
    preference: [],
  });
  assert.equal(two.kind, "promote");
  const one = decideFailover({
    quorum,
    standbys: [
      { name: "s-r2", region: "r2", flushLsn: 5n },
      { name: "s-r3", region: "r3", flushLsn: undefined },
      { name: "s-r4", region: "r4", flushLsn: undefined },
    ],
    preference: [],
  });
  assert.equal(one.kind, "await-consent");
});

test("asynchronous commit (k = 0) is never provable from standbys alone; no answer at all means no candidate", () => {
  const standbys = [{ name: "s-r2", region: "r2", flushLsn: 5n }];
  assert.equal(
    decideFailover({ quorum: { k: 0, names: [] }, standbys, preference: [] }).kind,
    "await-consent",
  );
  assert.equal(
    decideFailover({
      quorum: { k: 1, names: ["s-r2"] },
      standbys: [{ name: "s-r2", region: "r2", flushLsn: undefined }],
      preference: [],
    }).kind,
    "no-candidate",
  );
});

test("parseQuorum reads what PostgreSQL accepts", () => {
  assert.deepEqual(parseQuorum('ANY 1 ("s-r2", "s-r3")'), { k: 1, names: ["s-r2", "s-r3"] });
  assert.deepEqual(parseQuorum("FIRST 2 (a, b, c)"), { k: 2, names: ["a", "b", "c"] });
  assert.deepEqual(parseQuorum("2 (a, b)"), { k: 2, names: ["a", "b"] });
  assert.deepEqual(parseQuorum("a, b"), { k: 1, names: ["a", "b"] });
  assert.deepEqual(parseQuorum(""), { k: 0, names: [] });
  assert.deepEqual(parseQuorum(null), { k: 0, names: [] });
});

test("property: a promotion the rule allows never loses an acknowledged commit", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 3 }),
      fc.array(fc.nat({ max: 1000 }), { minLength: 3, maxLength: 3 }),
      fc.array(fc.boolean(), { minLength: 3, maxLength: 3 }),
      fc.option(fc.nat({ max: 1000 }), { nil: undefined }),
      (k, flushes, answers, oldPrimary) => {
        // Each standby flushed WAL up to its position; a commit at LSN c was acknowledged iff at
        // least k standbys flushed it. The newest acknowledged commit is the k-th highest flush.
        const sorted = [...flushes].sort((a, b) => b - a);
        const newestAcknowledged = BigInt(sorted[k - 1] as number);
        const primaryEnd = BigInt(Math.max(...flushes) + 10);
        const confirmed = oldPrimary === undefined ? undefined : primaryEnd; // a confirmation is the truth
        const d = decideFailover({
          quorum: { k, names },
          standbys: names.map((name, i) => ({
            name,
            region: regionOf(name),
            flushLsn: answers[i] ? BigInt(flushes[i] as number) : undefined,
          })),
          oldPrimaryFlush: confirmed,
          preference: ["r2", "r3", "r4"],
        });
        if (d.kind === "promote")
          assert.ok(
            d.target.flushLsn >= newestAcknowledged,
            `${d.target.name} at ${d.target.flushLsn}: ${d.proof}`,
          );
        // Liveness: with every standby answering there is always a zero-loss promotion.
        if (answers.every(Boolean)) assert.equal(d.kind, "promote");
      },
    ),
    { numRuns: 2_000 },
  );
});
