/**
 * The world's supervisor as a command runs it: in the foreground for `ringfence up`, or detached
 * as the hidden `world-supervisor` role that `up --detach` starts. Also the flags every world
 * command shares.
 */
import pc from "picocolors";
import { RingfenceError } from "../lib/errors.js";
import type { WorldSummary } from "../world/supervisor.js";
import { EXIT, type Io } from "./output.js";
import { DEFAULT_STATE_DIR, RINGFENCE_BIN } from "./paths.js";

export interface WorldFlags {
  stateDir: string;
  topology?: string;
  detach?: boolean;
  addressBase?: string;
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

/** Runs the world in this process until SIGINT/SIGTERM. */
export async function runSupervisor(flags: WorldFlags, io: Io, foreground: boolean): Promise<number> {
  const { World } = await import("../world/supervisor.js");
  const world = new World({
    stateDir: flags.stateDir,
    ...(flags.topology === undefined ? {} : { topology: flags.topology }),
    addressBase: addressBase(flags),
    ringfenceBin: RINGFENCE_BIN,
    progress: (line) => io.stderr(`${line}\n`),
  });
  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= world.stop();
    return stopping;
  };
  const onSignal = () => {
    void stop().then(() => process.exit(0));
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  const summary = await world.start();
  io.stdout(`${renderSummary(summary, io.isTTY, foreground)}\n`);
  // The supervisor of a detached world tells `up --detach` it is ready.
  if (!foreground) io.stderr("READY\n");
  await new Promise<void>(() => {}); // until a signal stops the world
  return EXIT.ok;
}

function renderSummary(s: WorldSummary, color: boolean, foreground: boolean): string {
  const c = pc.createColors(color);
  return [
    "",
    c.bold(`ringfence world up in ${(s.startedInMs / 1000).toFixed(1)} s`) + c.dim(` (${s.topology})`),
    "",
    ...s.routers.map((r) => `  router ${r.region.padEnd(12)} ${r.url}`),
    `  controller        ${s.controller}`,
    `  tokens            ${s.tokensFile} (reader, operator, agent; mode 0600)`,
    `  state and logs    ${s.stateDir}`,
    "",
    `  try:  curl -X PUT -H 'X-Tenant: acme' -H 'content-type: application/json' -d '{"name":"Ada","email":"ada@example.com"}' ${s.routers[0]?.url}/users/ada`,
    `        curl -H 'X-Tenant: acme' ${s.routers[1]?.url ?? s.routers[0]?.url}/users/ada`,
    `        ringfence status${s.stateDir.endsWith(DEFAULT_STATE_DIR) ? "" : ` --state-dir ${s.stateDir}`}`,
    foreground ? "  stop: Ctrl-C, or `ringfence down` from another terminal" : "  stop: ringfence down",
  ].join("\n");
}
