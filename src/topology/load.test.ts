import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import fc from "fast-check";
import { stringify } from "yaml";
import { isRingfenceError, type RingfenceError } from "../lib/errors.js";
import { loadTopology, PACKAGE_ROOT, parseTopology } from "./load.js";
import { sampleTopologyData, type TopologyData } from "./testing.js";

/** The problems of a topology that must fail, as `path: message` lines. */
function problemsOf(text: string): RingfenceError {
  try {
    parseTopology(text, "t.yaml");
  } catch (err) {
    assert.ok(isRingfenceError(err), `not a RingfenceError: ${err}`);
    return err;
  }
  assert.fail("the topology was accepted");
}

function broken(change: (t: TopologyData) => void): RingfenceError {
  const data = sampleTopologyData();
  change(data);
  return problemsOf(stringify(data));
}

function hasProblem(err: RingfenceError, path: string, pattern: RegExp): void {
  const found = err.problems.find((p) => p.path === path && pattern.test(p.message));
  assert.ok(
    found,
    `no problem at ${path} matching ${pattern}; got:\n${err.problems.map((p) => `${p.path}: ${p.message}`).join("\n")}`,
  );
}

test("the bundled topologies load, compiled and frozen", () => {
  const t = loadTopology();
  assert.equal(t.name, "default");
  assert.equal(t.regions.length, 3);
  assert.equal(t.zones.length, 6);
  assert.equal(t.cells.count, 4);
  for (const cell of t.cells.list) assert.equal(new Set(cell.regions).size, 3);
  assert.ok(
    Object.isFrozen(t) && Object.isFrozen(t.services[0]) && Object.isFrozen(t.cells.list[0]?.regions),
  );
  assert.equal(t.services[0]?.rtoMs, 30_000);
  assert.equal(t.failover.detectionMs, 3_000);
  const big = loadTopology(join(PACKAGE_ROOT, "examples", "internet-scale.yaml"));
  assert.equal(big.regions.length, 30);
  assert.equal(big.cells.count, 300);
  assert.equal(big.load.tenants, 1_000_000);
  assert.ok(big.dependencies.length >= 3 && big.services.length >= 3);
  // Latency derived from locations: Virginia to Oregon is some 3,700 km.
  const east = big.regions.find((r) => r.name === "us-east-1");
  assert.ok(
    east && (east.latencyMs["us-west-2"] as number) > 25 && (east.latencyMs["us-west-2"] as number) < 60,
  );
});

test("defaults are filled in and writes are inferred from routes", () => {
  const t = parseTopology(stringify(sampleTopologyData()));
  const [write, read] = t.services[0]?.slos ?? [];
  assert.equal(write?.writes, true);
  assert.equal(read?.writes, false);
  assert.equal(t.services[0]?.healthPath, "/healthz");
  assert.equal(t.services[0]?.durability, "strict");
  assert.equal(t.cells.buckets, 4096);
  assert.ok(Math.abs((t.regions[0]?.trafficShare ?? 0) - 1 / 3) < 1e-12);
  assert.equal(t.components.instance.mtbfMs, 30 * 86_400_000);
});

test("the example in the issue: an availability of 100 names its path", () => {
  const err = broken((t) => {
    t.services[0].slos[1].availability = 100;
  });
  assert.equal(err.code, "RINGFENCE_TOPOLOGY_INVALID");
  hasProblem(err, "services[0].slos[1].availability", /must be below 100, got 100/);
  const p = err.problems[0];
  assert.ok(p?.line && p.column, "located in the file");
});

test("wrong types are reported with what was expected and what was found", () => {
  const err = broken((t) => {
    t.cells.count = "four";
    t.services[0].instances = 1.5;
    t.regions[0].zones = "a";
    t.services[0].slos[0].latency = "fast";
  });
  hasProblem(err, "cells.count", /must be a number, got "four"/);
  hasProblem(err, "services[0].instances", /whole number/);
  hasProblem(err, "regions[0].zones", /must be an array/);
  hasProblem(err, "services[0].slos[0].latency", /duration such as "250ms"/);
});

test("unknown regions are named with the known ones and a suggestion", () => {
  const err = broken((t) => {
    t.regions[0].latency = { r2: "10ms", r4: "5ms", r3: "40ms" };
    t.regions[1].pair = "r9";
    t.cells.regions = ["r1", "r2", "rr3"];
  });
  hasProblem(err, "regions[0].latency.r4", /unknown region "r4".*use one of r1, r2, r3/);
  hasProblem(err, "regions[1].pair", /unknown region "r9"/);
  hasProblem(err, "cells.regions[2]", /unknown region "rr3" \(did you mean "r3"\?\)/);
});

test("duplicate names are reported where the second one stands", () => {
  const err = broken((t) => {
    t.regions[2].name = "r1";
    t.services.push({ ...t.services[0] });
    t.services[0].slos[1].scenario = "write";
  });
  hasProblem(err, "regions[2].name", /duplicate region "r1" \(also regions\[0\]\)/);
  hasProblem(err, "services[1].name", /duplicate service "app"/);
  hasProblem(err, "services[0].slos[1].scenario", /duplicate scenario "write"/);
});

test("failback: automatic after 60 s by default; manual cells must exist", () => {
  const t = parseTopology(stringify(sampleTopologyData()));
  assert.equal(t.failover.failback, "automatic");
  assert.equal(t.failover.failbackAfterMs, 60_000);
  assert.deepEqual(t.failover.manualFailback, []);
  hasProblem(
    broken((d) => {
      (d as { failover?: unknown }).failover = { failbackAfter: "5s", manualFailback: [1, 9] };
    }),
    "failover.manualFailback[1]",
    /cell 9 does not exist: cells are numbered 0 to 3/,
  );
});

test("every failover setting is compiled once, and what the runtime waits for derives from it", () => {
  const data = sampleTopologyData();
  data.failover = { detection: "5s", promotion: "4s", failback: "manual", failbackAfter: "90s" };
  data.services[0].durability = "available";
  const t = parseTopology(stringify(data));
  assert.equal(t.failover.detectionMs, 5_000);
  assert.equal(t.failover.promotionMs, 4_000);
  // The standbys' positions are waited for out of the promotion budget.
  assert.equal(t.failover.positionWaitMs, 4_000);
  // Going asynchronous is declared like a primary loss: after the detection.
  assert.equal(t.failover.asyncAfterMs, 5_000);
  assert.equal(t.failover.durability, "available");
  assert.equal(t.failover.failback, "manual");
  assert.equal(t.failover.failbackAfterMs, 90_000);
  assert.ok(Object.isFrozen(t.failover) && Object.isFrozen(t.failover.detection));
  // One strict service keeps every cell strict: a cell holds every service's data.
  data.services.push({ ...data.services[0], name: "other", durability: "strict" });
  assert.equal(parseTopology(stringify(data)).failover.durability, "strict");
});

test("impossible replica counts say what would make them possible", () => {
  hasProblem(
    broken((t) => {
      t.cells.replicas = 4;
    }),
    "cells.replicas",
    /4 replicas need 4 regions.*only 3/,
  );
  hasProblem(
    broken((t) => {
      t.cells.replicas = 2;
      t.cells.syncQuorum = 2;
    }),
    "cells.syncQuorum",
    /ANY 2 .* at least 3 replicas/,
  );
  hasProblem(
    broken((t) => {
      t.cells.count = 10;
      t.cells.buckets = 8;
    }),
    "cells.count",
    /10 cells cannot share 8 buckets/,
  );
  hasProblem(
    broken((t) => {
      t.cells.pin = [{ cell: 0, regions: ["r1", "r1", "r2"] }];
    }),
    "cells.pin[0].regions[1]",
    /no two replicas of one cell may share a region/,
  );
});

test("missing latency between two regions names the pair and the fix", () => {
  hasProblem(
    broken((t) => {
      t.regions[1].latency = {};
    }),
    "regions[1].latency",
    /no WAN latency between "r2" and "r3": add regions\[1\]\.latency\.r3/,
  );
});

test("unknown fields suggest the field that was meant", () => {
  const err = broken((t) => {
    t.cells.replica = 3;
    t.service = [];
  });
  hasProblem(err, "cells.replica", /unknown field "replica" \(did you mean "replicas"\?\)/);
  hasProblem(err, "service", /unknown field "service" \(did you mean "services"\?\)/);
});

test("every problem in a file is reported at once, across sections", () => {
  const err = broken((t) => {
    t.cells.count = -1;
    t.services[0].slos[0].availability = 0;
    t.regions[0].pair = "nowhere";
    t.dependencies = [{ name: "x", providers: [] }];
  });
  const paths = err.problems.map((p) => p.path);
  for (const path of [
    "cells.count",
    "services[0].slos[0].availability",
    "regions[0].pair",
    "dependencies[0].providers",
  ]) {
    assert.ok(paths.includes(path), `${path} missing from ${paths.join(", ")}`);
  }
});

test("YAML syntax errors give line and column", () => {
  const err = problemsOf("regions:\n  - name: r1\n   zones: [a\ncells: {count: 1}\n");
  assert.equal(err.code, "RINGFENCE_TOPOLOGY_YAML");
  assert.ok(err.problems.length > 0);
  assert.ok(err.problems.every((p) => typeof p.line === "number" && typeof p.column === "number"));
  const dup = problemsOf("name: a\nname: b\n");
  assert.equal(dup.code, "RINGFENCE_TOPOLOGY_YAML");
  assert.match(dup.problems[0]?.message ?? "", /unique/i);
  assert.equal(problemsOf("just a string").code, "RINGFENCE_TOPOLOGY_INVALID");
  assert.equal(problemsOf("").code, "RINGFENCE_TOPOLOGY_INVALID");
});

test("problem lines point at the offending line of the file", () => {
  const text = readFileSync(join(PACKAGE_ROOT, "topologies", "default.yaml"), "utf8").replace(
    "availability: 99.99",
    "availability: 100",
  );
  const err = problemsOf(text);
  const lineOf = text.split("\n").findIndex((l) => l.includes("availability: 100")) + 1;
  assert.equal(err.problems[0]?.line, lineOf);
});

test("a missing file is its own error", () => {
  assert.throws(() => loadTopology("/nonexistent/ringfence.yaml"), { code: "RINGFENCE_TOPOLOGY_NOT_FOUND" });
  assert.throws(() => loadTopology("no-such-bundled-name"), { code: "RINGFENCE_TOPOLOGY_NOT_FOUND" });
});

test("fuzz: arbitrary documents are either accepted or rejected with located problems, never a crash", () => {
  fc.assert(
    fc.property(fc.jsonValue({ maxDepth: 4 }), (value) => {
      try {
        parseTopology(stringify(value));
      } catch (err) {
        assert.ok(isRingfenceError(err), String(err));
        assert.ok(err.problems.length > 0);
      }
    }),
    { numRuns: 300 },
  );
  fc.assert(
    fc.property(fc.string({ maxLength: 200 }), (text) => {
      try {
        parseTopology(text);
      } catch (err) {
        assert.ok(isRingfenceError(err), String(err));
      }
    }),
    { numRuns: 300 },
  );
});

/** Every path to a leaf of a value, for mutation. */
function leafPaths(value: unknown, prefix: (string | number)[] = []): (string | number)[][] {
  if (Array.isArray(value)) return value.flatMap((v, i) => leafPaths(v, [...prefix, i]));
  if (value !== null && typeof value === "object") {
    return Object.entries(value).flatMap(([k, v]) => leafPaths(v, [...prefix, k]));
  }
  return [prefix];
}

test("fuzz: any one field of a valid topology replaced by junk is accepted or reported at that field", () => {
  const base = sampleTopologyData();
  const paths = leafPaths(base);
  fc.assert(
    fc.property(fc.integer({ min: 0, max: paths.length - 1 }), fc.jsonValue({ maxDepth: 2 }), (i, junk) => {
      const data = structuredClone(base);
      const path = paths[i] as (string | number)[];
      let node: TopologyData = data;
      for (const part of path.slice(0, -1)) node = node[part];
      node[path[path.length - 1] as string] = junk;
      try {
        parseTopology(stringify(data));
      } catch (err) {
        assert.ok(isRingfenceError(err), String(err));
        assert.ok(err.problems.length > 0 && err.problems.every((p) => p.message.length > 0));
      }
    }),
    { numRuns: 500 },
  );
});

test("a fallback is read-only: a write route in it is refused", () => {
  hasProblem(
    broken((t) => {
      t.services[0].fallback = { command: "fb", routes: ["GET /things/:id", "POST /things"] };
    }),
    "services[0].fallback.routes[1]",
    /a fallback is read-only .* got "POST \/things"/,
  );
});

test("a single-region topology needs no syncQuorum: it defaults to 0 with one replica", () => {
  const t = parseTopology(
    stringify({
      regions: [{ name: "solo", zones: ["a"] }],
      cells: { count: 2 },
      services: [
        {
          name: "s",
          command: "s",
          slos: [{ scenario: "x", routes: ["GET /"], availability: 99, latency: "1s" }],
        },
      ],
    }),
  );
  assert.equal(t.cells.replicas, 1);
  assert.equal(t.cells.syncQuorum, 0);
  assert.equal(parseTopology(stringify(sampleTopologyData())).cells.syncQuorum, 1);
});

test("a known field in the wrong place is not offered as its own correction", () => {
  const err = broken((t) => {
    t.region = t.regions;
    t.regions[0].replicas = 3;
  });
  hasProblem(err, "region", /field "region" does not belong here/);
  hasProblem(err, "regions[0].replicas", /field "replicas" does not belong here/);
  assert.ok(err.problems.every((p) => !/did you mean "(region|replicas)"\?/.test(p.message)));
});

test("an unknown field is located at its key", () => {
  const text = stringify({ ...sampleTopologyData(), colour: { deep: { value: 1 } } });
  const err = problemsOf(text);
  const p = err.problems.find((x) => x.path === "colour");
  const line = text.split("\n").findIndex((l) => l.startsWith("colour:")) + 1;
  assert.equal(p?.line, line);
  assert.equal(p?.column, 1);
});

test("pinning a region outside cells.regions says so", () => {
  hasProblem(
    broken((t) => {
      t.cells.regions = ["r1", "r2"];
      t.cells.replicas = 2;
      t.cells.pin = [{ cell: 0, regions: ["r1", "r3"] }];
    }),
    "cells.pin[0].regions[1]",
    /region "r3" is not in cells.regions \(r1, r2\)/,
  );
});

test("traffic shares that leave other regions nothing are refused", () => {
  hasProblem(
    broken((t) => {
      t.regions[0].trafficShare = 60;
      t.regions[1].trafficShare = 40;
    }),
    "regions",
    /leaving 0% for r3/,
  );
  const t = parseTopology(
    stringify(
      (() => {
        const d = sampleTopologyData();
        d.regions[0].trafficShare = 50;
        return d;
      })(),
    ),
  );
  assert.deepEqual(
    t.regions.map((r) => r.trafficShare),
    [0.5, 0.25, 0.25],
  );
});
