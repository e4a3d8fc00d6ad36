/**
 * The world's supervisor as a command runs it: in the foreground for `ringfence up`, or detached
 * as the hidden `world-supervisor` role that `up --detach` starts. Also the flags every world
 * command shares.
 */
import { constants } from "node:os";
import pc from "picocolors";
import { RingfenceError } from "../lib/errors.js";
import { parseDurationMs } from "../lib/units.js";
import type { Topology } from "../topology/model.js";
import type { WorldSummary } from "../world/supervisor.js";
import { EXIT, type Io, reportError } from "./output.js";
import { DEFAULT_STATE_DIR, RINGFENCE_BIN } from "./paths.js";
import { exampleRequests } from "./try-hints.js";

export interface WorldFlags {
  stateDir: string;
  topology?: string;
  detach?: boolean;
  addressBase?: string;
  readyTimeout?: string;
  json?: boolean;
}

/** The `--state-dir` option every world command takes. */
export const STATE_OPTION = [
  "--state-dir <dir>",
  "where the world keeps its data, logs and tokens",
  DEFAULT_STATE_DIR,
] as const;

export function addressBase(flags: WorldFlags): number {
  const n = Number(flags.addressBase ?? "0");
  if (!Number.isInteger(n) || n < 0 || n > 255) {
    throw new RingfenceError(
      "RINGFENCE_USAGE",
      `--address-base: must be a whole number from 0 to 255, got "${flags.addressBase}"`,
    );
  }
  return n;
}

/** The `--ready-timeout` option of `up` (and of the supervisor `up --detach` starts). */
export const READY_TIMEOUT_OPTION = [
  "--ready-timeout <duration>",
  "how long to wait for every region's router to serve every cell before giving up (e.g. 90s, 5m)",
  "2m",
] as const;

export function readyTimeoutMs(flags: WorldFlags): number {
  const ms = parseDurationMs(flags.readyTimeout ?? "2m");
  if (ms === undefined || ms <= 0) {
    throw new RingfenceError(
      "RINGFENCE_USAGE",
      `--ready-timeout: must be a duration above 0 such as 90s or 5m, got "${flags.readyTimeout}"`,
    );
  }
  return ms;
}

/**
 * Runs the world in this process until SIGINT/SIGTERM, which stop it (exit 0). A start that fails
 * or that a signal interrupts has stopped everything it started before `world.start()` rejects;
 * this process then ends at once: with the error and the log lines it names (exit 2), or with
 * 128 + the signal's number. It exits explicitly, not by letting the event loop drain, so that no
 * handle left open anywhere can keep a supervisor of nothing alive.
 */
export async function runSupervisor(flags: WorldFlags, io: Io, foreground: boolean): Promise<number> {
  const { World } = await import("../world/supervisor.js");
  const world = new World({
    stateDir: flags.stateDir,
    ...(flags.topology === undefined ? {} : { topology: flags.topology }),
    addressBase: addressBase(flags),
    readyTimeoutMs: readyTimeoutMs(flags),
    ringfenceBin: RINGFENCE_BIN,
    progress: (line) => io.stderr(`${line}\n`),
  });
  let serving = false;
  let signalled: NodeJS.Signals | undefined;
  const onSignal = (signal: NodeJS.Signals) => {
    if (signalled !== undefined) {
      io.stderr(`${signal}: already stopping the world (supervisor pid ${process.pid})\n`);
      return;
    }
    signalled = signal;
    io.stderr(`${signal}: stopping the world${serving ? "" : " that was starting"}\n`);
    const stopped = world.stop();
    // While starting, world.start() rejects once everything is stopped, and the code below exits.
    if (serving) void stopped.then(() => process.exit(EXIT.ok));
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  let summary: WorldSummary;
  try {
    summary = await world.start();
  } catch (err) {
    if (signalled === undefined) process.exit(reportError(err, io, false));
    io.stderr(`the start was interrupted by ${signalled}; everything it had started is stopped\n`);
    process.exit(128 + constants.signals[signalled]);
  }
  if (signalled !== undefined) {
    // The signal came as the start finished: stop what it started, as asked.
    await world.stop();
    process.exit(128 + constants.signals[signalled]);
  }
  serving = true;
  io.stdout(`${renderSummary(summary, world.topology, io.isTTY, foreground)}\n`);
  // The supervisor of a detached world tells `up --detach` it is ready.
  if (!foreground) io.stderr("READY\n");
  await new Promise<void>(() => {}); // until a signal stops the world
  return EXIT.ok;
}

/** What `up` prints once the world serves: where everything is, and requests to try (try-hints.ts). */
export function renderSummary(
  s: WorldSummary,
  topology: Topology,
  color: boolean,
  foreground: boolean,
): string {
  const c = pc.createColors(color);
  const tries = [
    ...exampleRequests(
      topology,
      s.routers.map((r) => r.url),
    ),
    `ringfence status${s.stateDir.endsWith(DEFAULT_STATE_DIR) ? "" : ` --state-dir ${s.stateDir}`}`,
  ];
  return [
    "",
    c.bold(`ringfence world up in ${(s.startedInMs / 1000).toFixed(1)} s`) + c.dim(` (${s.topology})`),
    "",
    ...s.routers.map((r) => `  router ${r.region.padEnd(12)} ${r.url}`),
    `  controller        ${s.controller}`,
    `  tokens            ${s.tokensFile} (reader, operator, agent; mode 0600)`,
    `  state and logs    ${s.stateDir}`,
    "",
    ...tries.map((line, i) => `${i === 0 ? "  try:  " : "        "}${line}`),
    foreground ? "  stop: Ctrl-C, or `ringfence down` from another terminal" : "  stop: ringfence down",
  ].join("\n");
}
