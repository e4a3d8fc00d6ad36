import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { test } from "node:test";
import fc from "fast-check";
import { DEFAULT_TOKEN_TTL_MS, issueToken, verifyToken } from "./token.js";

const secret = Buffer.alloc(32, 7);
const otherSecret = Buffer.alloc(32, 8);
const NOW = 1_750_000_000_000;
const params = { numRuns: 300, interruptAfterTimeLimit: 4_000 };

const ident = fc.stringMatching(/^[A-Za-z0-9._-]{1,128}$/);
const claims = fc.record({
  tenant: ident,
  userId: fc.string({ minLength: 1, maxLength: 200, unit: "grapheme" }),
  ttlMs: fc.integer({ min: 1, max: 10 * 365 * 86_400_000 }),
});

test("issue then verify gives back the tenant, user and expiry (property)", () => {
  fc.assert(
    fc.property(claims, fc.integer({ min: 0, max: 4_000_000_000_000 }), (c, now) => {
      const issued = issueToken(secret, c, now);
      assert.equal(issued.expiresAt, new Date(now + c.ttlMs).toISOString());
      assert.deepEqual(verifyToken(secret, issued.token, now), {
        ok: true,
        tenant: c.tenant,
        userId: c.userId,
        expiresAt: issued.expiresAt,
      });
      assert.deepEqual(verifyToken(secret, issued.token, now + c.ttlMs), { ok: false, reason: "expired" });
      assert.deepEqual(verifyToken(otherSecret, issued.token, now), { ok: false, reason: "signature" });
    }),
    params,
  );
});

test("changing any single character of a token makes it fail (property)", () => {
  const replacement = fc.oneof(
    fc.constantFrom(..."ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ "),
    fc.string({ minLength: 1, maxLength: 1, unit: "binary" }),
  );
  fc.assert(
    fc.property(claims, fc.nat(), replacement, (c, at, char) => {
      const { token } = issueToken(secret, c, NOW);
      const i = at % token.length;
      fc.pre(token[i] !== char);
      const tampered = token.slice(0, i) + char + token.slice(i + 1);
      const result = verifyToken(secret, tampered, NOW);
      assert.equal(result.ok, false, `changing position ${i} to ${JSON.stringify(char)} still verified`);
    }),
    params,
  );
});

test("the last signature character cannot be swapped for one that decodes to the same bytes", () => {
  // 32 signature bytes are 43 base64url characters; the last one carries 2 unused bits.
  const { token } = issueToken(secret, { tenant: "acme", userId: "u1" }, NOW);
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  for (const char of alphabet) {
    if (char === token.at(-1)) continue;
    assert.equal(verifyToken(secret, token.slice(0, -1) + char, NOW).ok, false, char);
  }
});

test("arbitrary input never throws and never verifies (property)", () => {
  fc.assert(
    fc.property(fc.oneof(fc.string({ unit: "binary" }), fc.anything()), (input) => {
      const result = verifyToken(secret, input, NOW);
      assert.equal(result.ok, false);
    }),
    params,
  );
  fc.assert(
    fc.property(fc.base64String(), fc.base64String(), (a, b) => {
      assert.equal(verifyToken(secret, `${a}.${b}`, NOW).ok, false);
    }),
    params,
  );
});

test("reasons: malformed shapes, a forged signature, expiry; the default TTL is one hour", () => {
  const issued = issueToken(secret, { tenant: "acme", userId: "alice" }, NOW);
  assert.equal(issued.expiresAt, new Date(NOW + DEFAULT_TOKEN_TTL_MS).toISOString());
  assert.equal(verifyToken(secret, issued.token, NOW + DEFAULT_TOKEN_TTL_MS - 1).ok, true);
  assert.deepEqual(verifyToken(secret, issued.token, NOW + DEFAULT_TOKEN_TTL_MS), {
    ok: false,
    reason: "expired",
  });
  for (const bad of ["", ".", "abc", "a.b.c", `.${issued.token}`, `${issued.token}.`, "é.é"]) {
    assert.deepEqual(verifyToken(secret, bad, NOW), { ok: false, reason: "malformed" }, bad);
  }
  // A well-formed signature over a payload the issuer never signed.
  const [payload] = issued.token.split(".");
  const forged = `${payload}.${Buffer.alloc(32).toString("base64url")}`;
  assert.deepEqual(verifyToken(secret, forged, NOW), { ok: false, reason: "signature" });
  // A correctly signed payload that is not a token payload is malformed, not valid.
  const junk = Buffer.from(JSON.stringify({ t: "acme" })).toString("base64url");
  const signed = `${junk}.${createHmac("sha256", secret).update(junk).digest("base64url")}`;
  assert.deepEqual(verifyToken(secret, signed, NOW), { ok: false, reason: "malformed" });
  // Every token is distinct even for the same claims at the same instant.
  assert.notEqual(issueToken(secret, { tenant: "acme", userId: "alice" }, NOW).token, issued.token);
});

test("issuing refuses a short secret and a non-positive TTL", () => {
  assert.throws(() => issueToken(Buffer.alloc(16), { tenant: "a", userId: "b" }), RangeError);
  assert.throws(() => issueToken(secret, { tenant: "a", userId: "b", ttlMs: 0 }), RangeError);
  assert.throws(() => issueToken(secret, { tenant: "a", userId: "b", ttlMs: Number.NaN }), RangeError);
});
