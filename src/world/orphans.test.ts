/**
 * `ringfence down` after the supervisor was SIGKILLed: first against stand-in processes (fast, no
 * PostgreSQL), then against a real world started with `up --detach` in a process of its own.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { RINGFENCE_BIN } from "../cli/paths.js";
import { isRingfenceError } from "../lib/errors.js";
import { CHILD_NODE_FLAGS } from "../lib/node-flags.js";
import { loadTopology } from "../topology/load.js";
import { buildLayout } from "./layout.js";
import { assertNoOrphans, findWorldProcesses, stopOrphans, WORLD_MARK } from "./orphans.js";
import { readPidFile } from "./pid-files.js";
import { environOf, isAlive, listProcs, readProc, startTimeOf } from "./procfs.js";
import { probeTenants } from "./readiness.js";
import { StateDir } from "./state.js";
import { TEST_TOPOLOGY } from "./world-testing.js";

const dirs: string[] = [];
const children: ChildProcess[] = [];
after(() => {
  for (const child of children) child.kill("SIGKILL");
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  // The postgres user must reach the data inside it, or it would go to /var/tmp and outlive the test.
  chmodSync(dir, 0o755);
  dirs.push(dir);
  return dir;
}

describe("stand-in processes", () => {
  const dir = tempDir("ringfence-orphans-");
  const state = new StateDir(join(dir, "state"));
  const other = join(dir, "other-world");
  const pgRoot = join(dir, "pg");
  mkdirSync(state.root, { recursive: true });
  mkdirSync(pgRoot);
  writeFileSync(
    state.configFile,
    JSON.stringify({
      version: 1,
      topologyFile: "x",
      topologySource: "x",
      addressBase: 0,
      pgRoot,
      createdAt: "",
    }),
  );
  const script = join(dir, "stand-in.js");
  writeFileSync(
    script,
    [
      "if (process.env.STUBBORN) { process.on('SIGTERM', () => {}); process.on('SIGINT', () => {}); }",
      "setInterval(() => {}, 1000);",
    ].join("\n"),
  );

  /**
   * Starts `node [nodeFlags] stand-in.js ...args` (under another argv[0] when `as` is given), as the
   * supervisor starts roles with V8 flags before the script.
   */
  async function standIn(
    args: string[],
    env: Record<string, string> = {},
    as?: string,
    nodeFlags: readonly string[] = [],
  ): Promise<number> {
    const argv = as
      ? ["bash", ["-c", `exec -a "$0" "$@"`, as, process.execPath, script, ...args]]
      : [process.execPath, [...nodeFlags, script, ...args]];
    const child = spawn(argv[0] as string, argv[1] as string[], {
      stdio: "ignore",
      env: { ...process.env, ...env },
    });
    children.push(child);
    const pid = child.pid as number;
    // Wait for the command line to be the stand-in's (bash execs a second time).
    const deadline = Date.now() + 5_000;
    while (!readProc(pid)?.argv.includes(script)) {
      if (Date.now() > deadline) throw new Error(`stand-in ${args.join(" ")} did not start`);
      await new Promise((r) => setTimeout(r, 20));
    }
    return pid;
  }

  test("only processes tied to this state directory are found, and down stops them in order", async () => {
    const root = state.root;
    const agent = await standIn(
      ["agent", "--state-dir", root, "--zone", "r1/a"],
      {},
      undefined,
      CHILD_NODE_FLAGS,
    );
    const router = await standIn(["router", "--state-dir", root, "--region", "r1"], { STUBBORN: "1" });
    const instance = await standIn(["demo", "directory"], {
      [WORLD_MARK]: root,
      RINGFENCE_INSTANCE: "directory/cell-0/r1/1",
    });
    const controlDataDir = join(pgRoot, "control");
    mkdirSync(controlDataDir);
    const postmaster = await standIn(["-D", controlDataDir], {}, join(dir, "bin", "postgres"));
    writeFileSync(join(controlDataDir, "postmaster.pid"), `${postmaster}\n${controlDataDir}\n1700000000\n`);
    const recorded = await standIn([]);

    // Not ours: another world's agent and instance, `up` naming this folder, a postmaster.pid whose
    // pid now belongs to an unrelated process, a postgres of another data directory, a stale record.
    const foreign = [
      await standIn(["agent", "--state-dir", other, "--zone", "r1/a"]),
      await standIn(["demo", "directory"], { [WORLD_MARK]: other, RINGFENCE_INSTANCE: "x" }),
      await standIn(["up", "--detach", "--state-dir", root]),
    ];
    const reused = await standIn([]);
    const cellDataDir = join(pgRoot, "cell-0-r1");
    mkdirSync(cellDataDir);
    writeFileSync(join(cellDataDir, "postmaster.pid"), `${reused}\n${cellDataDir}\n`);
    const elsewhere = await standIn(["-D", join(dir, "elsewhere")], {}, join(dir, "bin", "postgres"));
    const staleDataDir = join(pgRoot, "cell-1-r1");
    mkdirSync(staleDataDir);
    writeFileSync(join(staleDataDir, "postmaster.pid"), `${elsewhere}\n${staleDataDir}\n`);
    const notRecorded = await standIn([]);
    foreign.push(reused, elsewhere, notRecorded);
    writeFileSync(
      state.processesFile,
      JSON.stringify({
        version: 1,
        supervisor: { role: "supervisor", pid: await deadPid(), startTime: 1 },
        processes: [
          { role: "router:r2", pid: recorded, startTime: startTimeOf(recorded) },
          { role: "router:r3", pid: notRecorded, startTime: (startTimeOf(notRecorded) as number) - 1 },
        ],
      }),
    );

    const found = findWorldProcesses(state);
    assert.deepEqual(
      found.map((p) => [p.label, p.pid]),
      [
        ["router r1", router],
        ["router r2", recorded],
        ["agent r1/a", agent],
        ["instance directory/cell-0/r1/1", instance],
        ["postgres control", postmaster],
      ],
    );

    assert.throws(
      () => assertNoOrphans(state),
      (err) =>
        isRingfenceError(err) &&
        err.code === "RINGFENCE_WORLD_ORPHANS" &&
        err.message.includes(`agent r1/a (pid ${agent})`) &&
        err.message.includes(`ringfence down --state-dir ${state.root}`),
    );

    const lines: string[] = [];
    const report = await stopOrphans(state, { graceMs: 1_000, progress: (l) => lines.push(l) });
    assert.deepEqual(
      report.stopped.map((p) => p.pid),
      found.map((p) => p.pid),
    );
    assert.deepEqual(
      report.killed.map((p) => p.label),
      ["router r1"],
      "only the one ignoring SIGTERM is SIGKILLed",
    );
    assert.deepEqual(report.survivors, []);
    assert.match(lines.join("\n"), /SIGINT, a fast shutdown, to databases/);
    for (const p of found) assert.equal(isAlive(p.pid, p.startTime), false, p.label);
    for (const pid of foreign) assert.equal(isAlive(pid), true, `pid ${pid} is not the world's`);
    assert.deepEqual(findWorldProcesses(state), []);
    assertNoOrphans(state);
  });
});

/** The pid of a process that has exited. */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ["-e", ""], { stdio: "ignore" });
  await new Promise((resolve) => child.once("exit", resolve));
  return child.pid as number;
}

/** Runs the real `ringfence` bin to completion. */
function ringfence(...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [RINGFENCE_BIN, ...args], { encoding: "utf8", timeout: 240_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Processes that name `dir` in their command line or carry it as the world mark, found without orphans.ts. */
function processesUnder(...paths: string[]): string[] {
  return listProcs()
    .filter((p) => p.state !== "Z" && p.pid !== process.pid)
    .filter((p) => {
      const cmd = p.argv.join(" ");
      const mark = environOf(p.pid)?.get(WORLD_MARK);
      return paths.some((path) => cmd.includes(path) || mark?.startsWith(path) === true);
    })
    .map((p) => `${p.pid} ${p.argv.join(" ")}`);
}

describe("a real world whose supervisor was SIGKILLed", () => {
  // Its own addresses: 127.212.x.y is used by no other test.
  const ADDRESS_BASE = "212";
  const dir = tempDir("ringfence-orphans-world-");
  const state = new StateDir(join(dir, "state"));
  const topologyFile = join(dir, "topology.yaml");
  writeFileSync(topologyFile, TEST_TOPOLOGY);
  let pgRoot: string | undefined;

  after(
    async () => {
      // Whatever a failed test left: the supervisor, then every orphan.
      const pid = readPidFile(state);
      if (pid !== undefined && isAlive(pid)) ringfence("down", "--state-dir", state.root);
      await stopOrphans(state, { graceMs: 5_000 });
      if (pgRoot && !pgRoot.startsWith(dir)) rmSync(pgRoot, { recursive: true, force: true });
    },
    { timeout: 180_000 },
  );

  test("down stops every orphan with a fast shutdown, up refuses until then, and the data survives", {
    timeout: 600_000,
  }, async () => {
    const started = ringfence(
      "up",
      "--detach",
      "--state-dir",
      state.root,
      "--topology",
      topologyFile,
      "--address-base",
      ADDRESS_BASE,
    );
    assert.equal(started.code, 0, started.stderr);
    const config = state.readConfig();
    pgRoot = config.pgRoot;
    const topology = loadTopology(config.topologyFile);
    const layout = buildLayout(topology, config.addressBase);
    const router = (region: string) => {
      const r = layout.regions.find((x) => x.name === region);
      return `http://${r?.router.host}:${r?.router.port}`;
    };
    const tenant = probeTenants(topology).find((p) => p.cell === "cell-0")?.tenant as string;
    const put = await fetch(`${router("r1")}/users/before-crash`, {
      method: "PUT",
      headers: { "x-tenant": tenant, "content-type": "application/json" },
      body: JSON.stringify({ name: "Before Crash", email: "before-crash@example.com" }),
    });
    assert.equal(put.status, 200, await put.text());
    const lsn = put.headers.get("x-ringfence-commit-lsn") ?? "";

    const supervisor = readPidFile(state) as number;
    assert.ok(isAlive(supervisor));
    const world = findWorldProcesses(state).map((p) => p.label);
    for (const label of ["controller", "agent r1/a", "router r1", "postgres control", "postgres cell-0-r1"]) {
      assert.ok(world.includes(label), `${label} runs: ${world.join(", ")}`);
    }
    process.kill(supervisor, "SIGKILL");
    const deadline = Date.now() + 10_000;
    while (isAlive(supervisor) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    assert.equal(isAlive(supervisor), false);
    assert.ok(findWorldProcesses(state).length >= world.length - 1, "the supervisor's children live on");

    const refused = ringfence("up", "--detach", "--state-dir", state.root, "--address-base", ADDRESS_BASE);
    assert.equal(refused.code, 2, refused.stderr);
    assert.match(refused.stderr, /RINGFENCE_WORLD_ORPHANS/);
    assert.match(refused.stderr, /still run without their supervisor/);
    assert.ok(refused.stderr.includes(`ringfence down --state-dir ${state.root}`), refused.stderr);

    const down = ringfence("down", "--state-dir", state.root);
    assert.equal(down.code, 0, down.stderr);
    assert.match(down.stderr, /stopped \d+ orphaned processes of a world whose supervisor was gone:/);
    for (const label of [
      "controller",
      "agent r1/a",
      "agent r3/a",
      "router r2",
      "postgres control",
      "instance directory/cell-1/r3/",
    ]) {
      assert.ok(down.stderr.includes(`  ${label}`), `down names ${label}:\n${down.stderr}`);
    }
    // Which cell databases still run varies: with the WAN emulator gone along with the supervisor,
    // the controller may already have moved a primary, and its agent stopped the old one.
    assert.match(down.stderr, /^ {2}postgres cell-\d-r\d \(pid \d+\)$/m);
    assert.doesNotMatch(down.stderr, /SIGKILL after/, "everything stopped within the grace time");
    assert.deepEqual(processesUnder(state.root, config.pgRoot), [], "no process of the world is left");
    assert.deepEqual(findWorldProcesses(state), []);
    // A clean (fast) shutdown removes postmaster.pid; a SIGKILLed server would leave it.
    const locks = readdirSync(config.pgRoot).filter((d) =>
      existsSync(join(config.pgRoot, d, "postmaster.pid")),
    );
    assert.deepEqual(locks, [], "every PostgreSQL server shut down cleanly");

    const again = ringfence("down", "--state-dir", state.root);
    assert.equal(again.code, 0);
    assert.match(again.stderr, /no world is running/);

    const restarted = ringfence("up", "--detach", "--state-dir", state.root, "--address-base", ADDRESS_BASE);
    assert.equal(restarted.code, 0, restarted.stderr);
    const read = await fetch(`${router("r2")}/users/before-crash`, {
      headers: { "x-tenant": tenant, "x-ringfence-min-lsn": lsn },
    });
    const body = (await read.json()) as { user?: { email?: string } };
    assert.equal(read.status, 200, JSON.stringify(body));
    assert.equal(body.user?.email, "before-crash@example.com");

    const stopped = ringfence("down", "--state-dir", state.root);
    assert.equal(stopped.code, 0, stopped.stderr);
    assert.match(stopped.stderr, /^stopped; the data stays in/m);
    assert.doesNotMatch(stopped.stderr, /orphaned/);
    assert.deepEqual(processesUnder(state.root, config.pgRoot), []);
  });
});
