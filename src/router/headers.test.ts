import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { headerValue, readRequestHeaders, responseHeaders, upstreamLines } from "./headers.js";

const linesOf = (text: string) => text.split("\r\n").filter((l) => l !== "");

test("request headers: tenant, idempotency key, length and forwarded-for are read; the rest goes on in order", () => {
  const h = readRequestHeaders(
    [
      "Host",
      "router:8080",
      "X-Tenant",
      "acme",
      "Accept",
      "application/json",
      "Content-Length",
      "12",
      "Idempotency-Key",
      "k-1",
      "X-Forwarded-For",
      "10.0.0.1",
      "Connection",
      "keep-alive",
      "x-ringfence-cell",
      "cell-9",
      "Accept",
      "text/plain",
    ],
    "x-tenant",
  );
  assert.equal(h.tenant, "acme");
  assert.equal(h.idempotencyKey, true);
  assert.equal(h.contentLength, "12");
  assert.equal(h.forwardedFor, "10.0.0.1");
  assert.deepEqual(linesOf(h.lines), [
    "X-Tenant: acme",
    "Accept: application/json",
    "Idempotency-Key: k-1",
    "Accept: text/plain",
  ]);
  assert.deepEqual(linesOf(upstreamLines(h, "cell-0", "eu", "127.0.0.1")).slice(-3), [
    "x-ringfence-cell: cell-0",
    "x-ringfence-router-region: eu",
    "x-forwarded-for: 10.0.0.1, 127.0.0.1",
  ]);
});

test("a repeated tenant header arrives as a list, so the tenant parser can refuse differing copies", () => {
  const h = readRequestHeaders(["x-tenant", "a", "X-TENANT", "b"], "x-tenant");
  assert.deepEqual(h.tenant, ["a", "b"]);
  assert.equal(readRequestHeaders([], "x-tenant").tenant, undefined);
});

test("headers a client's Connection header names are not forwarded", () => {
  const h = readRequestHeaders(
    ["Connection", "keep-alive, X-Secret", "x-secret", "1", "Keep-Alive", "timeout=5", "x-kept", "2"],
    "x-tenant",
  );
  assert.deepEqual(linesOf(h.lines), ["x-kept: 2"]);
});

test("response headers lose hop-by-hop ones and those the upstream's Connection header names", () => {
  const out = responseHeaders([
    "Content-Type",
    "application/json",
    "Connection",
    "keep-alive, X-Internal",
    "Keep-Alive",
    "timeout=5",
    "Transfer-Encoding",
    "chunked",
    "x-internal",
    "secret",
    "Set-Cookie",
    "a=1",
    "Set-Cookie",
    "b=2",
  ]);
  assert.deepEqual(out, ["Content-Type", "application/json", "Set-Cookie", "a=1", "Set-Cookie", "b=2"]);
  assert.equal(headerValue(["Retry-After", "3"], "retry-after"), "3");
  assert.equal(headerValue([], "retry-after"), undefined);
});

const HOP = ["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te", "trailer"];
const NOT_FORWARDED = [
  "host",
  "content-length",
  "x-ringfence-cell",
  "x-ringfence-router-region",
  "x-ringfence-attempt",
];
const token = fc.stringMatching(/^[A-Za-z0-9-]{1,12}$/);
const name = fc.oneof(token, fc.constantFrom(...HOP, ...NOT_FORWARDED, "x-tenant", "X-Forwarded-For"));
const value = fc.stringMatching(/^[\x20-\x7e]{0,20}$/).map((v) => v.trim());

test("property: whatever the headers, hop-by-hop and router-set ones never go upstream, and the others go in order", () => {
  fc.assert(
    fc.property(fc.array(fc.tuple(name, value), { maxLength: 30 }), (pairs) => {
      const raw = pairs.flat();
      const h = readRequestHeaders(raw, "x-tenant");
      const connection = pairs
        .filter(([n]) => n.toLowerCase() === "connection")
        .flatMap(([, v]) => v.split(",").map((t) => t.trim().toLowerCase()));
      const expected = pairs
        .filter(([n]) => {
          const lower = n.toLowerCase();
          return (
            !HOP.includes(lower) &&
            !NOT_FORWARDED.includes(lower) &&
            lower !== "x-forwarded-for" &&
            !(connection.includes(lower) && lower !== "keep-alive" && lower !== "close")
          );
        })
        .map(([n, v]) => `${n}: ${v}`);
      assert.deepEqual(linesOf(h.lines), expected);
      const tenants = pairs.filter(([n]) => n.toLowerCase() === "x-tenant").map(([, v]) => v);
      assert.deepEqual(
        h.tenant,
        tenants.length === 0 ? undefined : tenants.length === 1 ? tenants[0] : tenants,
      );
    }),
    { numRuns: 500 },
  );
});
