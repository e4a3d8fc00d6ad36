import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { formatAvailability, formatDuration, nines, parseDurationMs, parsePercent } from "./units.js";

test("durations parse in every unit and reject junk", () => {
  assert.equal(parseDurationMs("250ms"), 250);
  assert.equal(parseDurationMs("5s"), 5_000);
  assert.equal(parseDurationMs("1.5h"), 5_400_000);
  assert.equal(parseDurationMs("30d"), 30 * 86_400_000);
  assert.equal(parseDurationMs("1y"), 365.25 * 86_400_000);
  assert.equal(parseDurationMs(0), 0);
  for (const bad of ["", "5", "5 sec", "-1s", "s", "1e3s", "5ss"])
    assert.equal(parseDurationMs(bad), undefined, bad);
  assert.equal(parseDurationMs(5), undefined, "a bare non-zero number has no unit");
});

test("percentages accept numbers and '%' strings", () => {
  assert.equal(parsePercent(99.95), 99.95);
  assert.equal(parsePercent("99.95%"), 99.95);
  assert.equal(parsePercent("99.95"), undefined);
  assert.equal(parsePercent(Number.NaN), undefined);
});

test("formatAvailability never rounds a value below 1 up to 100%", () => {
  fc.assert(
    fc.property(fc.double({ min: 0.5, max: 1, noNaN: true, maxExcluded: true }), (a) => {
      const text = formatAvailability(a);
      assert.notEqual(text, "100%", `${a} printed as ${text}`);
      assert.ok(Number.parseFloat(text) <= a * 100 + 1e-9, `${text} above ${a}`);
    }),
  );
  assert.equal(formatAvailability(1), "100%");
  assert.equal(formatAvailability(0.9994), "99.940%");
});

test("nines and durations format for people", () => {
  assert.ok(Math.abs(nines(0.999) - 3) < 1e-9);
  assert.equal(formatDuration(5_000), "5 s");
  assert.equal(formatDuration(90_000), "1.5 min");
  assert.equal(formatDuration(4 * 3_600_000), "4 h");
  assert.equal(formatDuration(0), "0 ms");
});
