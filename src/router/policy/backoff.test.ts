import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { parseHttpDate, parseRetryAfter, retryDelayMs } from "./backoff.js";

test("full jitter: the ceiling doubles from baseMs up to maxMs (defaults 25 and 250)", () => {
  const top = { random: () => 0.999_999 };
  assert.deepEqual(
    [0, 1, 2, 3, 4, 5, 60, 5000].map((a) => retryDelayMs(a, top)),
    [25, 50, 100, 200, 250, 250, 250, 250],
  );
  assert.equal(retryDelayMs(3, { random: () => 0 }), 0);
  assert.equal(retryDelayMs(0, { baseMs: 100, maxMs: 1000, random: () => 0.5 }), 50);
});

test("bad attempts and bad random sources still give a delay in range", () => {
  for (const attempt of [-1, Number.NaN, Number.NEGATIVE_INFINITY]) {
    assert.equal(retryDelayMs(attempt, { random: () => 0.999_999 }), 25);
  }
  assert.equal(retryDelayMs(Number.POSITIVE_INFINITY, { random: () => 0.999_999 }), 250);
  for (const r of [1, 2, -1, Number.NaN]) {
    const d = retryDelayMs(2, { random: () => r });
    assert.ok(d >= 0 && d <= 100, `random ${r} → ${d}`);
  }
  assert.throws(() => retryDelayMs(0, { baseMs: -1 }), RangeError);
  assert.throws(() => retryDelayMs(0, { maxMs: Number.NaN }), RangeError);
});

test("property: delays are whole ms in [0, min(max, base·2^attempt)]", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 100 }),
      fc.integer({ min: 0, max: 10_000 }),
      fc.integer({ min: 0, max: 100_000 }),
      fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
      (attempt, baseMs, maxMs, r) => {
        const d = retryDelayMs(attempt, { baseMs, maxMs, random: () => r });
        assert.ok(Number.isInteger(d));
        assert.ok(d >= 0 && d <= Math.min(maxMs, baseMs * 2 ** attempt));
      },
    ),
    { numRuns: 300 },
  );
});

test("jitter is spread evenly over the range", () => {
  let seed = 1;
  const random = (): number => {
    seed = (seed * 16807) % 2147483647;
    return (seed - 1) / 2147483646;
  };
  const counts = new Array<number>(5).fill(0);
  const options = { baseMs: 100, maxMs: 99, random };
  for (let i = 0; i < 50_000; i++) {
    const d = retryDelayMs(0, options);
    counts[Math.floor(d / 20)] = (counts[Math.floor(d / 20)] ?? 0) + 1;
  }
  for (const c of counts) assert.ok(Math.abs(c - 10_000) < 600, `bucket ${c} near 10000`);
});

const NOW = Date.UTC(2025, 0, 15, 12, 0, 0);

test("Retry-After in delay seconds, capped at 10 s by default", () => {
  assert.equal(parseRetryAfter("0", NOW), 0);
  assert.equal(parseRetryAfter("3", NOW), 3000);
  assert.equal(parseRetryAfter(" 7 ", NOW), 7000);
  assert.equal(parseRetryAfter("120", NOW), 10_000);
  assert.equal(parseRetryAfter("120", NOW, { maxMs: 60_000 }), 60_000);
  assert.equal(parseRetryAfter("99999999999999999999999999999999999", NOW), 10_000);
  assert.equal(parseRetryAfter(["2", "9"], NOW), 2000, "the first of repeated headers");
});

test("Retry-After as an HTTP date in all three RFC 9110 forms", () => {
  assert.equal(parseRetryAfter("Wed, 15 Jan 2025 12:00:05 GMT", NOW), 5000);
  assert.equal(parseRetryAfter("Wednesday, 15-Jan-25 12:00:04 GMT", NOW), 4000);
  assert.equal(parseRetryAfter("Wed Jan 15 12:00:03 2025", NOW), 3000);
  assert.equal(parseRetryAfter("Wed Jan  1 12:00:03 2025", NOW), 0, "a past date means retry now");
  assert.equal(parseRetryAfter("Wed, 15 Jan 2025 13:00:00 GMT", NOW), 10_000, "capped");
  assert.equal(parseRetryAfter("Tue, 14 Jan 2025 12:00:00 GMT", NOW), 0);
  assert.equal(parseHttpDate("Sun, 06 Nov 1994 08:49:37 GMT"), 784111777000);
  assert.equal(parseHttpDate("Sunday, 06-Nov-94 08:49:37 GMT", NOW), 784111777000);
  assert.equal(parseHttpDate("Sun Nov  6 08:49:37 1994"), 784111777000);
});

test("junk Retry-After values give undefined", () => {
  const junk = [
    undefined,
    [],
    "",
    "   ",
    "-5",
    "1.5",
    "5s",
    "0x10",
    "1e3",
    "Infinity",
    "NaN",
    "soon",
    "2025-01-15T12:00:05Z",
    "Wed, 31 Feb 2025 12:00:05 GMT",
    "Wed, 15 Foo 2025 12:00:05 GMT",
    "Wed, 15 Jan 2025 25:00:05 GMT",
    "Wed, 15 Jan 2025 12:00:05 UTC",
    "wed, 15 jan 2025 12:00:05 gmt",
    `${"9".repeat(41)}`,
    "Wed, 15 Jan 2025 12:00:05 GMT\u0000",
    "٣",
  ];
  for (const value of junk)
    assert.equal(parseRetryAfter(value as never, NOW), undefined, JSON.stringify(value));
});

test("property: arbitrary Retry-After strings never throw and stay within [0, maxMs]", () => {
  fc.assert(
    fc.property(
      fc.oneof(
        // Any code points, lone surrogates and control characters included.
        fc
          .array(fc.integer({ min: 0, max: 0x10ffff }), { maxLength: 60 })
          .map((cps) => String.fromCodePoint(...cps)),
        fc.string({ unit: fc.constantFrom(..."0123456789 ,:-GMTJanWedSun"), maxLength: 40 }),
        fc.integer({ min: -10, max: 10 ** 6 }).map(String),
      ),
      fc.integer({ min: 0, max: 100_000 }),
      (value, maxMs) => {
        const ms = parseRetryAfter(value, NOW, { maxMs });
        if (ms !== undefined) assert.ok(ms >= 0 && ms <= maxMs);
      },
    ),
    { numRuns: 500 },
  );
});
