import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { isValidTenant, MAX_TENANT_LENGTH, parseTenant, type TenantResult } from "./tenant.js";

const ID_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-";
const validId = fc
  .string({ unit: fc.constantFrom(...ID_CHARS), minLength: 1, maxLength: MAX_TENANT_LENGTH })
  .filter((s) => !s.startsWith("."));
const anyString = fc.oneof(
  fc.string({ unit: "binary", maxLength: 300 }),
  fc.string({ unit: "grapheme", maxLength: 50 }),
  fc.string({ maxLength: 200 }),
);
const invalidId = anyString.filter((s) => s !== "" && !/^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$/.test(s));

function assertWellFormed(r: TenantResult): void {
  if (r.ok) {
    assert.ok(isValidTenant(r.tenant), `returned tenant ${JSON.stringify(r.tenant)} is valid`);
    assert.equal(typeof r.path, "string");
  } else {
    assert.ok(r.code === "RINGFENCE_TENANT_MISSING" || r.code === "RINGFENCE_TENANT_INVALID");
    assert.ok(r.message.length > 0 && r.message.length < 400, "message is short");
  }
}

test("reads the x-tenant header by default and keeps the path", () => {
  assert.deepEqual(parseTenant({ headers: { "x-tenant": "acme-1.eu_2" }, path: "/users?x=1" }), {
    ok: true,
    tenant: "acme-1.eu_2",
    path: "/users?x=1",
  });
});

test("header names match case-insensitively, configured or sent", () => {
  const r1 = parseTenant({ headers: { "x-org": "acme" }, path: "/" }, { header: "X-Org" });
  assert.ok(r1.ok && r1.tenant === "acme");
  const r2 = parseTenant({ headers: { "X-TENANT": "acme" }, path: "/" });
  assert.ok(r2.ok && r2.tenant === "acme");
});

test("a missing or empty header is RINGFENCE_TENANT_MISSING and names the header", () => {
  for (const headers of [{}, { "x-tenant": "" }, { "x-tenant": [] }, { other: "acme" }]) {
    const r = parseTenant({ headers, path: "/" }, { header: "x-customer" });
    assert.equal(r.ok, false);
    if (!r.ok) {
      assert.equal(r.code, "RINGFENCE_TENANT_MISSING");
      assert.match(r.message, /x-customer/);
      assert.match(r.message, /1–128 characters/);
    }
  }
});

test("a malformed header is RINGFENCE_TENANT_INVALID with what a valid id looks like", () => {
  for (const value of [".hidden", "a b", "a/b", "ä", "x".repeat(129), "a\u0000", "a, b"]) {
    const r = parseTenant({ headers: { "x-tenant": value }, path: "/" });
    assert.equal(r.ok, false, value);
    if (!r.ok) {
      assert.equal(r.code, "RINGFENCE_TENANT_INVALID");
      assert.match(r.message, /x-tenant/);
      assert.match(r.message, /not starting with '\.'/);
    }
  }
  assert.ok(parseTenant({ headers: { "x-tenant": "x".repeat(128) }, path: "/" }).ok);
});

test("repeated headers: identical copies are accepted, conflicting ones are not", () => {
  const same = parseTenant({ headers: { "x-tenant": ["acme", "acme"] }, path: "/" });
  assert.ok(same.ok && same.tenant === "acme");
  const conflict = parseTenant({ headers: { "x-tenant": ["acme", "evil"] }, path: "/" });
  assert.ok(!conflict.ok && conflict.code === "RINGFENCE_TENANT_INVALID");
  assert.ok(!conflict.ok && /sent 2 times/.test(conflict.message));
});

test("path prefix mode takes the first segment and rewrites the path", () => {
  const cases: [string, string, string][] = [
    ["/t/acme/users/7?x=1", "acme", "/users/7?x=1"],
    ["/t/acme", "acme", "/"],
    ["/t/acme/", "acme", "/"],
    ["/t/acme?x=1", "acme", "/?x=1"],
  ];
  for (const [path, tenant, rest] of cases) {
    assert.deepEqual(parseTenant({ headers: {}, path }, { pathPrefix: "/t/" }), {
      ok: true,
      tenant,
      path: rest,
    });
    // A prefix without its trailing slash behaves the same.
    assert.deepEqual(parseTenant({ headers: {}, path }, { pathPrefix: "/t" }), {
      ok: true,
      tenant,
      path: rest,
    });
  }
});

test("path prefix mode ignores the header and reports the prefix", () => {
  for (const path of ["/users", "/t/", "/t", "/tenants/acme/x", "/t//x", "/t/?x"]) {
    const r = parseTenant({ headers: { "x-tenant": "acme" }, path }, { pathPrefix: "/t" });
    assert.equal(r.ok, false, path);
    if (!r.ok) {
      assert.equal(r.code, "RINGFENCE_TENANT_MISSING", path);
      assert.match(r.message, /\/t\/<tenant>\//);
    }
  }
  const bad = parseTenant({ headers: {}, path: "/t/.x/users" }, { pathPrefix: "/t/" });
  assert.ok(!bad.ok && bad.code === "RINGFENCE_TENANT_INVALID" && bad.message.includes("/t/"));
  const long = parseTenant({ headers: {}, path: `/t/${"a".repeat(5_000_000)}/x` }, { pathPrefix: "/t/" });
  assert.ok(!long.ok && long.code === "RINGFENCE_TENANT_INVALID");
});

test("hostile inputs never throw", () => {
  const throwing = new Proxy(
    {},
    {
      get() {
        throw new Error("boom");
      },
      has() {
        throw new Error("boom");
      },
      getOwnPropertyDescriptor() {
        throw new Error("boom");
      },
      ownKeys() {
        throw new Error("boom");
      },
    },
  );
  const inputs: unknown[] = [
    undefined,
    null,
    {},
    { headers: null, path: null },
    { headers: "x-tenant: acme", path: 7 },
    { headers: throwing, path: "/" },
    { headers: { "x-tenant": 42 }, path: "/" },
    { headers: { "x-tenant": [42] }, path: "/" },
    { headers: { "x-tenant": ["", ""] }, path: "/" },
    { headers: Object.create({ "x-tenant": "inherited" }), path: "/" },
  ];
  for (const input of inputs) {
    for (const options of [undefined, {}, { header: "constructor" }, { pathPrefix: "/t/" }, null]) {
      assertWellFormed(parseTenant(input as never, options as never));
    }
  }
  const inherited = parseTenant({ headers: Object.create({ "x-tenant": "inherited" }), path: "/" });
  assert.equal(inherited.ok, false, "inherited properties are not headers");
});

test("fuzz: arbitrary headers, header arrays, paths and options never throw", () => {
  const headerValue = fc.oneof(
    anyString,
    fc.array(anyString, { maxLength: 4 }),
    validId,
    fc.array(validId, { maxLength: 3 }),
    fc.anything(),
  );
  const headerName = fc.oneof(fc.constantFrom("x-tenant", "X-Tenant", "x-org"), anyString);
  fc.assert(
    fc.property(
      fc.dictionary(headerName, headerValue, { maxKeys: 6 }),
      fc.oneof(
        anyString,
        validId.map((id) => `/t/${id}/x`),
        fc.constant("/t/"),
      ),
      fc.record(
        { header: headerName, pathPrefix: fc.oneof(fc.constant("/t/"), fc.constant("/t"), anyString) },
        {
          requiredKeys: [],
        },
      ),
      (headers, path, options) => {
        assertWellFormed(parseTenant({ headers: headers as never, path }, options));
      },
    ),
    { numRuns: 500 },
  );
});

test("property: valid ids round-trip through the header and through the path", () => {
  fc.assert(
    fc.property(
      validId,
      fc.constantFrom("x-tenant", "X-Tenant", "x-customer-id"),
      fc.boolean(),
      fc.string({ maxLength: 40 }).map((s) => `/${s}`),
      (id, header, asArray, rest) => {
        const byHeader = parseTenant(
          { headers: { [header.toLowerCase()]: asArray ? [id] : id }, path: rest },
          { header },
        );
        assert.deepEqual(byHeader, { ok: true, tenant: id, path: rest });
        const byPath = parseTenant({ headers: {}, path: `/t/${id}${rest}` }, { pathPrefix: "/t/" });
        assert.deepEqual(byPath, { ok: true, tenant: id, path: rest });
        assert.ok(isValidTenant(id));
      },
    ),
    { numRuns: 300 },
  );
});

test("property: invalid ids are rejected by the header and by the path", () => {
  fc.assert(
    fc.property(invalidId, (id) => {
      assert.equal(isValidTenant(id), false);
      const byHeader = parseTenant({ headers: { "x-tenant": id }, path: "/" });
      assert.ok(!byHeader.ok && byHeader.code === "RINGFENCE_TENANT_INVALID");
      // In a path, '/' and '?' end the segment, so only ids without them stay whole.
      if (!/[/?]/.test(id)) {
        const byPath = parseTenant({ headers: {}, path: `/t/${id}/x` }, { pathPrefix: "/t/" });
        assert.ok(!byPath.ok && byPath.code === "RINGFENCE_TENANT_INVALID");
      }
    }),
    { numRuns: 300 },
  );
});
