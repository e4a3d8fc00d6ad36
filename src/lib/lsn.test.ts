import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { formatLsn, maxLsn, parseLsn } from "./lsn.js";

test("LSNs parse to 64-bit positions and format back as PostgreSQL prints them", () => {
  assert.equal(parseLsn("0/0"), 0n);
  assert.equal(parseLsn("16/B374D848"), (0x16n << 32n) | 0xb374d848n);
  assert.equal(formatLsn(parseLsn("16/B374D848") as bigint), "16/B374D848");
  for (const bad of ["", "16", "16/", "/1", "G/1", "1/2/3", "123456789/0", null, undefined])
    assert.equal(parseLsn(bad), undefined, String(bad));
  assert.equal(maxLsn(undefined, 3n), 3n);
  assert.equal(maxLsn(4n, 3n), 4n);
});

test("property: format and parse are inverse, and order is kept", () => {
  const lsn = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n });
  fc.assert(
    fc.property(lsn, lsn, (a, b) => {
      assert.equal(parseLsn(formatLsn(a)), a);
      assert.equal(a < b, (parseLsn(formatLsn(a)) as bigint) < (parseLsn(formatLsn(b)) as bigint));
    }),
  );
});
