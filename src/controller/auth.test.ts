import assert from "node:assert/strict";
import { test } from "node:test";
import { bearerToken, roleOf, tokensEqual, validateTokens } from "./auth.js";
import { TEST_TOKENS } from "./testing.js";

test("token comparison: equal tokens match, unequal ones of any length do not", () => {
  assert.equal(tokensEqual("s3cret-token", "s3cret-token"), true);
  assert.equal(tokensEqual("", ""), true);
  assert.equal(tokensEqual("s3cret-token", "s3cret-tokeN"), false);
  assert.equal(tokensEqual("s3cret", "s3cret-token"), false);
  assert.equal(tokensEqual("s3cret-token-and-much-longer", "s3cret-token"), false);
  assert.equal(tokensEqual("", "s3cret-token"), false);
  assert.equal(tokensEqual("é", "e"), false);
});

test("a token maps to its role, or to none", () => {
  assert.equal(roleOf(TEST_TOKENS, TEST_TOKENS.reader), "reader");
  assert.equal(roleOf(TEST_TOKENS, TEST_TOKENS.agent), "agent");
  assert.equal(roleOf(TEST_TOKENS, TEST_TOKENS.operator), "operator");
  assert.equal(roleOf(TEST_TOKENS, `${TEST_TOKENS.operator}x`), undefined);
  assert.equal(roleOf(TEST_TOKENS, ""), undefined);
});

test("the Authorization header must be `Bearer <token>`", () => {
  assert.equal(bearerToken("Bearer abc.def"), "abc.def");
  assert.equal(bearerToken("bearer abc"), "abc");
  assert.equal(bearerToken(undefined), undefined);
  assert.equal(bearerToken("Bearer"), undefined);
  assert.equal(bearerToken("Bearer "), undefined);
  assert.equal(bearerToken("Basic abc"), undefined);
  assert.equal(bearerToken("Bearer a b"), undefined);
  assert.equal(bearerToken("abc"), undefined);
});

test("tokens are checked at start: long enough and all different", () => {
  validateTokens(TEST_TOKENS);
  assert.throws(
    () => validateTokens({ ...TEST_TOKENS, reader: "short" }),
    (err: Error & { code?: string }) => err.code === "RINGFENCE_USAGE" && /tokens\.reader/.test(err.message),
  );
  assert.throws(
    () => validateTokens({ ...TEST_TOKENS, reader: TEST_TOKENS.operator }),
    (err: Error & { code?: string }) => err.code === "RINGFENCE_USAGE" && /must all differ/.test(err.message),
  );
});
