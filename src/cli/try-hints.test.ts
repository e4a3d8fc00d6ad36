import assert from "node:assert/strict";
import { test } from "node:test";
import { loadTopology } from "../topology/load.js";
import { sampleTopology } from "../topology/testing.js";
import { renderSummary } from "./supervise.js";
import { examplePath, exampleRequests, isBundledDemo, MAX_EXAMPLES } from "./try-hints.js";

const ROUTERS = ["http://127.0.10.1:8080", "http://127.0.11.1:8080", "http://127.0.12.1:8080"];

test("the bundled demo gets its own lines: a user written in one region, read in another", () => {
  const topology = loadTopology("default");
  assert.ok(isBundledDemo(topology.services[0] as (typeof topology.services)[number]));
  assert.deepEqual(exampleRequests(topology, ROUTERS), [
    `curl -X PUT -H 'X-Tenant: acme' -H 'content-type: application/json' -d '{"name":"Ada","email":"ada@example.com"}' ${ROUTERS[0]}/users/ada`,
    `curl -H 'X-Tenant: acme' ${ROUTERS[1]}/users/ada`,
  ]);
});

test("a user's own service gets its SLO routes, parameters filled in, never the demo's", () => {
  // The sample runs `app-server` with `POST /things` and `GET /things/:id`.
  const topology = sampleTopology();
  assert.equal(isBundledDemo(topology.services[0] as (typeof topology.services)[number]), false);
  const lines = exampleRequests(topology, ROUTERS);
  assert.deepEqual(lines, [
    `curl -X POST -H 'X-Tenant: acme' -H 'content-type: application/json' -d '{}' ${ROUTERS[0]}/things`,
    `curl -H 'X-Tenant: acme' ${ROUTERS[0]}/things/1`,
  ]);
  assert.ok(lines.every((l) => !l.includes("/users/ada")));
});

test("the tenant goes where the routers read it: the topology's header, or the path prefix", () => {
  const header = exampleRequests(
    sampleTopology((t) => {
      t.routers.tenantHeader = "X-Customer";
    }),
    ROUTERS,
  );
  assert.ok(
    header.every((l) => l.includes("-H 'X-Customer: acme'")),
    header.join("\n"),
  );
  const prefixed = exampleRequests(
    sampleTopology((t) => {
      t.routers.tenantPathPrefix = "/t/";
    }),
    ROUTERS,
  );
  assert.equal(prefixed[1], `curl ${ROUTERS[0]}/t/acme/things/1`);
  assert.ok(prefixed.every((l) => !l.includes("X-Tenant")));
});

test("path parameters get example values; many scenarios are cut and counted", () => {
  assert.equal(examplePath("/users/:id"), "/users/1");
  assert.equal(examplePath("/orgs/:orgId/items/:slug"), "/orgs/1/items/example");
  assert.equal(examplePath("/plain"), "/plain");
  const many = sampleTopology((t) => {
    t.services[0].slos = Array.from({ length: MAX_EXAMPLES + 2 }, (_, i) => ({
      scenario: `s${i}`,
      routes: [`HEAD /r${i}/:id`],
      availability: 99.9,
      latency: "100ms",
    }));
  });
  const lines = exampleRequests(many, ROUTERS);
  assert.equal(lines.length, MAX_EXAMPLES + 1);
  assert.equal(lines[0], `curl -I -H 'X-Tenant: acme' ${ROUTERS[0]}/r0/1`);
  assert.equal(lines[MAX_EXAMPLES], "(2 more scenarios in the topology's services[].slos)");
});

test("`up` prints the topology's requests to try, then `ringfence status`", () => {
  const summary = {
    stateDir: "/var/tmp/w/state",
    topology: "sample.yaml",
    controller: "http://127.0.0.1:7070",
    routers: ROUTERS.map((url, i) => ({ region: `r${i + 1}`, url })),
    tokensFile: "/var/tmp/w/state/tokens.json",
    startedInMs: 12_000,
  };
  const text = renderSummary(summary, sampleTopology(), false, false);
  const tries = text.split("\n").filter((l) => l.startsWith("  try:") || l.startsWith("        "));
  assert.deepEqual(tries, [
    `  try:  curl -X POST -H 'X-Tenant: acme' -H 'content-type: application/json' -d '{}' ${ROUTERS[0]}/things`,
    `        curl -H 'X-Tenant: acme' ${ROUTERS[0]}/things/1`,
    "        ringfence status --state-dir /var/tmp/w/state",
  ]);
  assert.doesNotMatch(text, /users\/ada/);
  assert.match(
    renderSummary(summary, loadTopology("default"), false, true),
    /try: {2}curl -X PUT .*\/users\/ada/,
  );
});
