import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";
import { loadTopology, PACKAGE_ROOT } from "../topology/load.js";
import { applicationName, buildLayout, reach, wanForwards } from "./layout.js";

for (const [name, file] of [
  ["default", undefined],
  ["internet-scale", join(PACKAGE_ROOT, "examples", "internet-scale.yaml")],
] as const) {
  test(`layout of ${name}: every endpoint is unique and every instance has its replica and writer in its region`, () => {
    const topology = loadTopology(file);
    const layout = buildLayout(topology, 3);
    const endpoints = [...layout.databases, ...layout.writers, ...layout.instances].map(
      (e) => `${e.host}:${e.port}`,
    );
    assert.equal(new Set(endpoints).size, endpoints.length, "endpoints collide");
    const ports = [...layout.databases, ...layout.writers, ...layout.instances].map((e) => e.port);
    assert.equal(new Set(ports).size, ports.length, "ports must be unique so WAN forwards can reuse them");
    for (const i of layout.instances) {
      assert.ok(layout.databases.some((d) => d.cell === i.cell && d.region === i.region));
      assert.ok(layout.writers.some((w) => w.cell === i.cell && w.region === i.region));
      assert.ok(
        i.host.startsWith(`127.3.${10 + (layout.regions.find((r) => r.name === i.region)?.index ?? -99)}.`),
      );
    }
    for (const f of wanForwards(layout)) {
      assert.notEqual(f.from, f.to);
      assert.equal(f.listen.port, f.target.port);
      assert.equal(f.listen.host, layout.regions.find((r) => r.name === f.from)?.wanHost);
    }
    assert.equal(layout.controller.host, "127.3.0.1");
  });
}

test("a remote endpoint is reached through the local end of the WAN, a local one directly", () => {
  const layout = buildLayout(loadTopology(), 0);
  const db = layout.databases[0];
  assert.ok(db);
  assert.deepEqual(reach(layout, db.region, db.region, db), db);
  const other = layout.regions.find((r) => r.name !== db.region);
  assert.ok(other);
  assert.deepEqual(reach(layout, other.name, db.region, db), { host: other.wanHost, port: db.port });
  assert.equal(applicationName("cell-10", "us-east"), "cell_10_us_east");
  assert.throws(() => buildLayout(loadTopology(), 256), RangeError);
});
