import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { join } from "node:path";
import { test } from "node:test";
import { main } from "../cli/main.js";
import { tempDir } from "../lib/temp-dirs.js";
import { BUNDLED_DIR, loadTopology } from "../topology/load.js";
import { defaultBucketTable } from "../topology/placement.js";
import { encodeBucketTable } from "../world/contracts.js";
import { buildLayout } from "../world/layout.js";
import { cellOf } from "./tenants.js";
import { startFakeDirectory } from "./testing.js";

/** Runs the CLI in-process and captures what it prints. */
async function ringfence(...args: string[]) {
  let stdout = "";
  let stderr = "";
  const code = await main(args, {
    stdout: (t) => {
      stdout += t;
    },
    stderr: (t) => {
      stderr += t;
    },
    isTTY: false,
  });
  return { code, stdout, stderr };
}

const loadTempDir = () => tempDir("ringfence-load-cli-");

test("bad flags are usage errors (exit 2) that name the flag", async () => {
  const cases: [string[], RegExp][] = [
    [["load", "--rps", "0"], /--rps: expected a number above 0/],
    [["load", "--write-ratio", "1.5"], /--write-ratio: expected a share between 0 and 1/],
    [["load", "--duration", "soon"], /--duration: expected a duration/],
    [["load", "--arrivals", "bursty"], /--arrivals: use uniform or poisson/],
    [["load", "--tenants", "2.5"], /--tenants: expected a whole number/],
    [["audit", "--ledger", join(loadTempDir(), "missing.jsonl")], /--ledger .*cannot read it/],
  ];
  for (const [args, message] of cases) {
    const r = await ringfence(...args);
    assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
    assert.match(r.stderr, /RINGFENCE_USAGE/);
    assert.match(r.stderr, message);
  }
  const noLedger = await ringfence("audit");
  assert.equal(noLedger.code, 2);
  assert.match(noLedger.stderr, /--ledger/);
  const garbage = join(loadTempDir(), "garbage.jsonl");
  writeFileSync(garbage, "hello\nworld\n");
  const notLedger = await ringfence("audit", "--ledger", garbage);
  assert.equal(notLedger.code, 2);
  assert.match(notLedger.stderr, /no line is a ledger entry/);
});

test("without a world both commands exit 2 with RINGFENCE_WORLD_NOT_FOUND", async () => {
  const dir = loadTempDir();
  const load = await ringfence("load", "--state-dir", join(dir, "none"), "--duration", "1s");
  assert.equal(load.code, 2);
  assert.match(load.stderr, /RINGFENCE_WORLD_NOT_FOUND/);
  const ledger = join(dir, "l.jsonl");
  writeFileSync(ledger, "");
  const audit = await ringfence("audit", "--ledger", ledger, "--state-dir", join(dir, "none"), "--json");
  assert.equal(audit.code, 2);
  assert.equal(JSON.parse(audit.stdout).error.code, "RINGFENCE_WORLD_NOT_FOUND");
});

test("`load` then `audit` against a fake world: the ledger is written, router reads pass, no database means unverified (exit 1)", async () => {
  // A world in a state directory, on its own loopback addresses, with a fake controller and routers.
  const addressBase = 230 + Math.floor(Math.random() * 25);
  const topologyFile = join(BUNDLED_DIR, "default.yaml");
  const topology = loadTopology(topologyFile);
  const layout = buildLayout(topology, addressBase);
  const dir = loadTempDir();
  const tokens = { reader: "rf_rdr_test", operator: "rf_opr_test", agent: "rf_agt_test" };
  writeFileSync(
    join(dir, "world.json"),
    JSON.stringify({ version: 1, topologyFile, topologySource: "test", addressBase }),
  );
  writeFileSync(join(dir, "tokens.json"), JSON.stringify(tokens));
  const table = defaultBucketTable(topology.cells.buckets, topology.cells.count);
  const controller: Server = createServer((req, res) => {
    if (req.headers.authorization !== `Bearer ${tokens.reader}`) return void res.writeHead(401).end();
    const cells = topology.cells.list.map((c) => ({
      cell: c.id,
      primary: c.regions[0],
      epoch: 1,
      fenced: false,
    }));
    const body =
      req.url === "/v1/routing"
        ? {
            version: 1,
            buckets: table.length,
            bucketTable: encodeBucketTable(table),
            cells,
            health: {},
            drains: [],
          }
        : { cells, bucketTableVersion: 1, desiredVersion: 1 };
    res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(body));
  });
  await new Promise<void>((resolve) =>
    controller.listen(layout.controller.port, layout.controller.host, resolve),
  );
  const fake = await startFakeDirectory({
    regions: layout.regions.map((r) => r.name),
    cellOf: (t) => cellOf(t, table),
    listen: Object.fromEntries(layout.regions.map((r) => [r.name, r.router])),
  });
  try {
    const ledger = join(dir, "ledger.jsonl");
    const load = await ringfence(
      "load",
      ...["--state-dir", dir, "--rps", "60", "--duration", "1s", "--tenants", "8", "--write-ratio", "0.5"],
      ...["--ledger", ledger, "--region", "us-east", "--region", "eu-west", "--json"],
    );
    assert.equal(load.code, 0, load.stderr);
    const summary = JSON.parse(load.stdout);
    assert.equal(summary.started, 60);
    assert.equal(summary.stats.total.errors, 0);
    assert.deepEqual(Object.keys(summary.stats.byRegion).sort(), ["eu-west", "us-east"]);
    assert.deepEqual(Object.keys(summary.stats.byService), ["directory"]);
    assert.equal(summary.ledger.file, ledger);
    assert.ok(summary.ledger.entries > 0);
    assert.match(load.stderr, /load: 60 rps/);
    assert.equal(fake.answered.get("us-west") ?? 0, 0, "--region limits the routers used");

    const audit = await ringfence(
      "audit",
      "--ledger",
      ledger,
      "--state-dir",
      dir,
      "--json",
      "--timeout",
      "2s",
    );
    assert.equal(audit.code, 1, audit.stderr);
    const report = JSON.parse(audit.stdout);
    assert.equal(report.ledger.entries, summary.ledger.entries);
    assert.equal(report.checked, summary.ledger.entries);
    assert.equal(report.unverified, report.checked, "no PostgreSQL in this world: nothing is proven");
    assert.equal(report.routerReadFailures, 0);
    assert.equal(report.passed, false);

    const text = await ringfence("audit", "--ledger", ledger, "--state-dir", dir);
    assert.equal(text.code, 1);
    assert.match(text.stdout, /FAIL: \d+ unverified/);
    assert.match(text.stdout, /cell-0/);
  } finally {
    await fake.close();
    controller.closeAllConnections();
    await new Promise((r) => controller.close(r));
  }
});
