import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { PACKAGE_ROOT } from "../topology/load.js";
import { supervisorTopologyPath, upTopology } from "./world.js";

const BIN = join(PACKAGE_ROOT, "dist", "cli", "main.js");

/** Runs the real `ringfence` bin. */
function ringfence(...args: string[]) {
  const r = spawnSync(process.execPath, [BIN, ...args], {
    encoding: "utf8",
    cwd: PACKAGE_ROOT,
    timeout: 60_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const tempDirs: string[] = [];
after(() => {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

function tempFile(text: string): string {
  const dir = mkdtempSync(join(tmpdir(), "ringfence-cli-"));
  tempDirs.push(dir);
  const file = join(dir, "ringfence.yaml");
  writeFileSync(file, text);
  return file;
}

test("`ringfence plan` prints the report for the bundled default topology", () => {
  const r = ringfence("plan");
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /ringfence plan: default/);
  assert.match(r.stdout, /Checks: spof ✓/);
});

test("`--json` prints a report scripts can read", () => {
  const r = ringfence("plan", "--json", "--simulate", "2", "--seed", "9");
  assert.equal(r.code, 0, r.stderr);
  const report = JSON.parse(r.stdout);
  assert.equal(report.topology.name, "default");
  assert.equal(report.simulation.years, 2);
  assert.equal(report.simulation.seed, 9);
  assert.equal(report.checks.spof, true);
});

test("`--fail-on` exits 1 when a gated check fails, 0 when it passes", () => {
  const example = join(PACKAGE_ROOT, "examples", "internet-scale.yaml");
  const failing = ringfence("plan", example, "--fail-on", "spof");
  assert.equal(failing.code, 1);
  assert.match(failing.stderr, /plan checks failed: spof/);
  assert.equal(ringfence("plan", example, "--fail-on", "objectives").code, 0);
  assert.equal(ringfence("plan", "--fail-on", "spof,objectives,capacity").code, 0);
});

test("a broken topology exits 2 with every located problem and no stack trace", () => {
  const file = tempFile(
    "regions:\n  - name: r1\n    zones: [a]\n    latency: {r2: 5ms}\ncells: {count: 0}\nservices: []\n",
  );
  const r = ringfence("plan", file);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /RINGFENCE_TOPOLOGY_INVALID/);
  assert.match(r.stderr, /ringfence\.yaml:4:\d+: regions\[0\]\.latency\.r2: unknown region "r2"/);
  assert.match(r.stderr, /cells\.count: must be at least 1, got 0/);
  assert.match(r.stderr, /services: at least one service/);
  assert.doesNotMatch(r.stderr, /\n\s+at /, "no stack trace");
  assert.equal(r.stdout, "");
});

test("errors are JSON too with --json", () => {
  const r = ringfence("plan", tempFile("regions: [\n"), "--json");
  assert.equal(r.code, 2);
  const { error } = JSON.parse(r.stdout);
  assert.equal(error.code, "RINGFENCE_TOPOLOGY_YAML");
  assert.ok(error.problems[0].line >= 1);
});

test("bad flags and missing files exit 2 with a message naming the fix", () => {
  const flag = ringfence("plan", "--fail-on", "spofs");
  assert.equal(flag.code, 2);
  assert.match(
    flag.stderr,
    /--fail-on: unknown check "spofs"; use a comma-separated list of spof, objectives/,
  );
  const years = ringfence("plan", "--simulate", "ten");
  assert.equal(years.code, 2);
  assert.match(years.stderr, /--simulate: must be a whole number/);
  const missing = ringfence("plan", "/nonexistent.yaml");
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /RINGFENCE_TOPOLOGY_NOT_FOUND/);
  assert.equal(ringfence("frobnicate").code, 2);
  assert.equal(ringfence("--help").code, 0);
});

test("`up --detach --topology default` gives the supervisor the bundled file, a path stays a path", () => {
  assert.equal(supervisorTopologyPath("default"), join(PACKAGE_ROOT, "topologies", "default.yaml"));
  const dir = mkdtempSync(join(tmpdir(), "ringfence-up-"));
  try {
    const file = join(dir, "mine.yaml");
    writeFileSync(file, "version: 1\n");
    assert.equal(supervisorTopologyPath(file), file);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("`up` takes the topology as its argument too; given twice it must be the same file", () => {
  const bundled = join(PACKAGE_ROOT, "topologies", "default.yaml");
  assert.equal(upTopology("my.yaml", undefined), "my.yaml");
  assert.equal(upTopology(undefined, "default"), "default");
  assert.equal(upTopology(undefined, undefined), undefined);
  assert.equal(upTopology("default", bundled), "default", "a bundled name and its path are one file");
  assert.throws(
    () => upTopology("default", join(PACKAGE_ROOT, "examples", "internet-scale.yaml")),
    (err: Error & { code?: string }) =>
      err.code === "RINGFENCE_USAGE" &&
      /given twice and differently: "default" \(argument\)/.test(err.message),
  );
  // Through the real bin (both fail before any world starts): the argument is the topology used.
  const dir = mkdtempSync(join(tmpdir(), "ringfence-up-"));
  tempDirs.push(dir);
  const state = join(dir, "state");
  const missing = ringfence("up", join(dir, "missing.yaml"), "--state-dir", state);
  assert.equal(missing.code, 2, missing.stderr);
  assert.match(missing.stderr, /RINGFENCE_TOPOLOGY_NOT_FOUND.*missing\.yaml/);
  const twice = ringfence(
    "up",
    "default",
    "--topology",
    "examples/internet-scale.yaml",
    "--state-dir",
    state,
  );
  assert.equal(twice.code, 2, twice.stderr);
  assert.match(twice.stderr, /RINGFENCE_USAGE.*given twice and differently/);
});
