import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import {
  atLeast,
  atLeastAvailability,
  type Block,
  BlockEvaluator,
  component,
  evaluate,
  exactAvailability,
  parallel,
  parallelAvailability,
  series,
  seriesAvailability,
  works,
} from "./blocks.js";

const close = (a: number, b: number, eps = 1e-12) => assert.ok(Math.abs(a - b) <= eps, `${a} ≠ ${b}`);

test("worked examples: series multiply, parallel is 1 − Π(1 − a)", () => {
  // 99.95% in series with 99.99% is 99.94%.
  close(seriesAvailability([0.9995, 0.9999]), 0.99940005);
  assert.equal((seriesAvailability([0.9995, 0.9999]) * 100).toFixed(2), "99.94");
  // Two independent 99.9% paths in parallel are 99.9999%.
  close(parallelAvailability([0.999, 0.999]), 0.999999);
  // A service active in 3 regions of 99.9% each.
  close(parallelAvailability([0.999, 0.999, 0.999]), 1 - 1e-9);
  // 2 of 3 at 0.9: 3·0.9²·0.1 + 0.9³ = 0.972.
  close(atLeastAvailability(2, [0.9, 0.9, 0.9]), 0.972);
  close(atLeastAvailability(1, [0.9, 0.8]), parallelAvailability([0.9, 0.8]));
  close(atLeastAvailability(2, [0.9, 0.8]), seriesAvailability([0.9, 0.8]));
  assert.equal(atLeastAvailability(0, [0.5]), 1);
  assert.equal(atLeastAvailability(3, [0.5, 0.5]), 0);
});

// Random blocks over a small pool of components, so that ids repeat (shared components).
const POOL = ["a", "b", "c", "d", "e"];
const blockArb: fc.Arbitrary<Block> = fc.letrec<{ block: Block }>((tie) => ({
  block: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    fc.constantFrom(...POOL).map(component),
    fc.array(tie("block"), { minLength: 1, maxLength: 3 }).map((c) => series("s", c)),
    fc.array(tie("block"), { minLength: 1, maxLength: 3 }).map((c) => parallel("p", c)),
    fc
      .array(tie("block"), { minLength: 1, maxLength: 4 })
      .chain((c) => fc.integer({ min: 1, max: c.length }).map((k) => atLeast("k", k, c))),
  ),
})).block;
const availabilitiesArb = fc.array(fc.double({ min: 0.01, max: 0.99, noNaN: true }), {
  minLength: POOL.length,
  maxLength: POOL.length,
});

/** Availability by enumerating every up/down state of the pool: the definition of exact. */
function bruteForce(block: Block, of: Map<string, number>): number {
  let total = 0;
  for (let mask = 0; mask < 1 << POOL.length; mask++) {
    let p = 1;
    const down = new Set<string>();
    POOL.forEach((id, i) => {
      const up = (mask >> i) & 1;
      const a = of.get(id) as number;
      p *= up ? a : 1 - a;
      if (!up) down.add(id);
    });
    if (works(block, down)) total += p;
  }
  return total;
}

test("exact availability equals enumeration over every component state, shared components included", () => {
  fc.assert(
    fc.property(blockArb, availabilitiesArb, (block, values) => {
      const of = new Map(POOL.map((id, i) => [id, values[i] as number]));
      close(
        exactAvailability(block, (id) => of.get(id) as number, POOL.length),
        bruteForce(block, of),
        1e-9,
      );
    }),
  );
});

test("without shared components, plain evaluation is already exact", () => {
  const of = new Map([
    ["a", 0.9],
    ["b", 0.8],
    ["c", 0.7],
  ]);
  const block = series("x", [component("a"), parallel("y", [component("b"), component("c")])]);
  close(
    evaluate(block, (id) => of.get(id) as number),
    bruteForce(block, new Map([...of, ["d", 0.5], ["e", 0.5]])),
  );
});

test("adding a redundant provider never lowers availability", () => {
  fc.assert(
    fc.property(
      fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { minLength: 1, maxLength: 6 }),
      fc.double({ min: 0, max: 1, noNaN: true }),
      fc.double({ min: 0, max: 1, noNaN: true }),
      (providers, extra, rest) => {
        const of = (id: string) =>
          id === "extra" ? extra : id === "rest" ? rest : (providers[Number(id)] as number);
        const dependency = (ids: string[]) =>
          series("path", [component("rest"), parallel("dep", ids.map(component))]);
        const before = evaluate(dependency(providers.map((_, i) => String(i))), of);
        const after = evaluate(dependency([...providers.map((_, i) => String(i)), "extra"]), of);
        assert.ok(after >= before - 1e-15, `${after} < ${before}`);
      },
    ),
  );
});

test("survives() agrees with works() for any single failure", () => {
  fc.assert(
    fc.property(blockArb, fc.constantFrom(...POOL), (block, id) => {
      const evaluator = new BlockEvaluator(() => 0.5);
      assert.equal(evaluator.survives(block, new Set([id])), works(block, new Set([id])));
    }),
  );
});
