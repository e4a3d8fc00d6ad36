/**
 * `ringfence up`, `down` and `status`, and the world's supervisor that `up` runs (in the
 * foreground, or detached as the hidden `world-supervisor` role, see roles.ts).
 */
import { spawn } from "node:child_process";
import { closeSync, fstatSync, mkdirSync, openSync } from "node:fs";
import { constants } from "node:os";
import type { Command } from "commander";
import pc from "picocolors";
import { RingfenceError } from "../lib/errors.js";
import { CHILD_NODE_FLAGS, withExtraNodeFlags } from "../lib/node-flags.js";
import { loadTopology, resolveTopologyPath } from "../topology/load.js";
import { buildLayout } from "../world/layout.js";
import {
  assertNoOrphans,
  findWorldProcesses,
  type OrphanReport,
  plural,
  stopOrphans,
} from "../world/orphans.js";
import { runningSupervisor } from "../world/pid-files.js";
import { isAlive, startTimeOf } from "../world/procfs.js";
import { StateDir } from "../world/state.js";
import { LogFollower } from "./log-follower.js";
import { EXIT, type Io } from "./output.js";
import { RINGFENCE_BIN } from "./paths.js";
import { renderStatus } from "./status.js";
import {
  addressBase,
  READY_TIMEOUT_OPTION,
  readyTimeoutMs,
  runSupervisor,
  STATE_OPTION,
  type WorldFlags,
} from "./supervise.js";

export function registerWorld(program: Command, io: Io, setExit: (code: number) => void): void {
  const stateOption = STATE_OPTION;
  program
    .command("up")
    .description("start a local multi-region world (the bundled default topology unless one is given)")
    .argument("[topology]", "topology file or bundled name, for a new world (as --topology)")
    .option("--topology <file>", "topology file or bundled name, for a new world")
    .option(...stateOption)
    .option("--detach", "leave the world running in the background and return")
    .option("--address-base <n>", "second octet of the world's loopback addresses (127.N.x.y)", "0")
    .option(...READY_TIMEOUT_OPTION)
    .action(async (topology: string | undefined, flags: WorldFlags) => {
      const chosen = upTopology(topology, flags.topology);
      setExit(await up({ ...flags, ...(chosen === undefined ? {} : { topology: chosen }) }, io));
    });
  program
    .command("down")
    .description("stop the local world cleanly; its data stays for the next `up`")
    .option(...stateOption)
    .action(async (flags: WorldFlags) => setExit(await down(flags, io)));
  program
    .command("status")
    .description(
      "regions, zones, cells (primary, standbys, lag, sync state), instances and routers, with health",
    )
    .option(...stateOption)
    .option("--json", "print the status as JSON")
    .action(async (flags: WorldFlags) => setExit(await status(flags, io)));
}

async function up(flags: WorldFlags, io: Io): Promise<number> {
  if (flags.detach) return await upDetached(flags, io);
  return await runSupervisor(flags, io, true);
}

/**
 * Starts the supervisor in the background and follows its log until it says READY. When it exits
 * instead (its start failed: it stopped everything and printed why), exits with its code. Ctrl-C
 * or SIGTERM meanwhile is passed on to it, since it is not in this terminal's process group: it
 * stops what it had started, and this exits with 128 + the signal's number once it has.
 */
async function upDetached(flags: WorldFlags, io: Io): Promise<number> {
  const state = new StateDir(flags.stateDir);
  const running = runningSupervisor(state);
  if (running !== undefined) {
    throw new RingfenceError(
      "RINGFENCE_WORLD_RUNNING",
      `a world is already running from ${state.root} (pid ${running}); \`ringfence down\` stops it`,
    );
  }
  assertNoOrphans(state);
  readyTimeoutMs(flags); // a bad flag fails here, not in the background
  mkdirSync(state.logs, { recursive: true });
  const logFile = state.log("supervisor");
  const fd = openSync(logFile, "a");
  const follower = new LogFollower(logFile, fstatSync(fd).size);
  const args = [
    ...withExtraNodeFlags(CHILD_NODE_FLAGS),
    RINGFENCE_BIN,
    "world-supervisor",
    "--state-dir",
    state.root,
    "--address-base",
    String(addressBase(flags)),
    "--ready-timeout",
    flags.readyTimeout ?? READY_TIMEOUT_OPTION[2],
  ];
  if (flags.topology) args.push("--topology", supervisorTopologyPath(flags.topology));
  const child = spawn(process.execPath, args, { detached: true, stdio: ["ignore", fd, fd] });
  closeSync(fd); // the child has its own copy
  child.unref();
  let exit: string | undefined;
  const exited = new Promise<void>((resolve) =>
    child.once("exit", (code, signal) => {
      exit = code === null ? `signal ${signal}` : `exit code ${code}`;
      resolve();
    }),
  );
  let signalled: NodeJS.Signals | undefined;
  const onSignal = (signal: NodeJS.Signals) => {
    if (signalled === undefined) {
      io.stderr(`${signal}: stopping the world that was starting (supervisor pid ${child.pid})\n`);
    }
    signalled = signal;
    if (child.pid !== undefined && child.exitCode === null) process.kill(child.pid, "SIGTERM");
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  try {
    while (true) {
      await Promise.race([exited, new Promise((r) => setTimeout(r, 200))]);
      const done = exit !== undefined;
      for (const line of follower.lines({ final: done })) {
        // READY after a signal: the supervisor is stopping again, follow it until it exits.
        if (line === "READY" && signalled === undefined) {
          io.stdout(`${pc.dim("the world runs in the background; `ringfence down` stops it")}\n`);
          return EXIT.ok;
        }
        if (line !== "READY") io.stderr(`${line}\n`);
      }
      if (done) {
        io.stderr(`the world supervisor (pid ${child.pid}) exited (${exit}); its log: ${logFile}\n`);
        if (signalled !== undefined) return 128 + constants.signals[signalled];
        return child.exitCode !== null && child.exitCode !== 0 ? child.exitCode : EXIT.internal;
      }
    }
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}

/**
 * Stops the world: SIGTERM to its supervisor, which stops everything else in order. When the
 * supervisor is gone (SIGKILLed, crashed) but processes it started live on, stops those directly.
 */
async function down(flags: WorldFlags, io: Io): Promise<number> {
  const state = new StateDir(flags.stateDir);
  const pid = runningSupervisor(state);
  if (pid === undefined) {
    if (findWorldProcesses(state).length === 0) {
      io.stderr(`no world is running from ${state.root}\n`);
      return EXIT.ok;
    }
    io.stderr(
      `the supervisor of the world in ${state.root} is gone (killed or crashed), but processes it started still run\n`,
    );
    const report = await stopOrphans(state, { progress: (line) => io.stderr(`${line}\n`) });
    return reportOrphans(report, "of a world whose supervisor was gone", state, io);
  }
  io.stderr(`stopping the world (supervisor pid ${pid})...\n`);
  const startTime = startTimeOf(pid);
  process.kill(pid, "SIGTERM");
  const deadline = Date.now() + 120_000;
  // The supervisor releases its record a moment before its process is gone: wait for both, or it
  // would be found by the search for orphans below, and stopped as one of its own.
  while (runningSupervisor(state) !== undefined || isAlive(pid, startTime)) {
    if (Date.now() > deadline) {
      io.stderr(
        `the supervisor (pid ${pid}) is still stopping after 120 s; see ${state.log("supervisor")}\n`,
      );
      return EXIT.internal;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  // The supervisor waits for every process it stops; anything left was lost from its view.
  const report = await stopOrphans(state);
  if (report.stopped.length > 0 || report.survivors.length > 0) {
    return reportOrphans(report, "that outlived the supervisor", state, io);
  }
  io.stderr(`stopped; the data stays in ${state.root} for the next \`ringfence up\`\n`);
  return EXIT.ok;
}

function reportOrphans(report: OrphanReport, whose: string, state: StateDir, io: Io): number {
  const killed = new Set(report.killed.map((p) => p.pid));
  if (report.stopped.length > 0) {
    io.stderr(
      `stopped ${plural(report.stopped.length, "orphaned process", "orphaned processes")} ${whose}:\n`,
    );
    for (const p of report.stopped) {
      io.stderr(`  ${p.label} (pid ${p.pid}${killed.has(p.pid) ? ", SIGKILL after the grace time" : ""})\n`);
    }
  }
  if (report.survivors.length > 0) {
    io.stderr(
      `could not stop ${plural(report.survivors.length, "process", "processes")} of the world in ${state.root}:\n`,
    );
    for (const p of report.survivors) io.stderr(`  ${p.label} (pid ${p.pid})\n`);
    io.stderr("stop them by hand (`kill -KILL PID`, as their owner) before the next `ringfence up`\n");
    return EXIT.internal;
  }
  io.stderr(`the data stays in ${state.root} for the next \`ringfence up\`\n`);
  return EXIT.ok;
}

async function status(flags: WorldFlags, io: Io): Promise<number> {
  const state = new StateDir(flags.stateDir);
  const config = state.readConfig();
  const layout = buildLayout(loadTopology(config.topologyFile), config.addressBase);
  const url = `http://${layout.controller.host}:${layout.controller.port}/v1/status`;
  let res: Response;
  try {
    res = await fetch(url, {
      headers: { authorization: `Bearer ${state.tokens().reader}` },
      signal: AbortSignal.timeout(5_000),
    });
  } catch (err) {
    throw new RingfenceError(
      "RINGFENCE_WORLD_NOT_FOUND",
      `the controller at ${url} does not answer (${(err as Error).message}); is the world up? (\`ringfence up --state-dir ${state.root}\`)`,
    );
  }
  const body = (await res.json()) as Record<string, unknown>;
  if (!res.ok)
    throw new RingfenceError(
      "RINGFENCE_INTERNAL",
      `the controller answered ${res.status}: ${JSON.stringify(body)}`,
    );
  io.stdout(flags.json ? `${JSON.stringify(body, null, 2)}\n` : `${renderStatus(body, io.isTTY)}\n`);
  return EXIT.ok;
}

/**
 * The topology `up` was given: as its argument (`ringfence up my.yaml`, like `ringfence plan`) or
 * with `--topology`. Both at once must name the same file (a bundled name and its path are the same
 * file); otherwise it is a usage error, since either could be the one meant.
 */
export function upTopology(argument: string | undefined, flag: string | undefined): string | undefined {
  if (argument === undefined || flag === undefined || argument === flag) return argument ?? flag;
  if (resolveTopologyPath(argument).path === resolveTopologyPath(flag).path) return argument;
  throw new RingfenceError(
    "RINGFENCE_USAGE",
    `the topology is given twice and differently: "${argument}" (argument) and "${flag}" (--topology); give it once`,
  );
}

/**
 * The file the detached supervisor is given for `up --topology X`: a bundled name (`default`) is the
 * bundled file, anything else a path resolved against the caller's directory (the supervisor's differs).
 */
export function supervisorTopologyPath(topology: string): string {
  return resolveTopologyPath(topology).path;
}
