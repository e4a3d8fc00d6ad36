/**
 * The hidden roles a world's supervisor starts as child processes: `world-supervisor` (a detached
 * `up`), `controller`, `agent` and `router`. Each loads only its own code, when it starts.
 */
import type { Command } from "commander";
import { RingfenceError } from "../lib/errors.js";
import { readCompiledTopology } from "../topology/compiled.js";
import { buildLayout } from "../world/layout.js";
import { StateDir } from "../world/state.js";
import type { Io } from "./output.js";
import { RINGFENCE_BIN } from "./paths.js";
import { READY_TIMEOUT_OPTION, runSupervisor, STATE_OPTION, type WorldFlags } from "./supervise.js";

export function registerRoles(program: Command, io: Io, setExit: (code: number) => void): void {
  program
    .command("world-supervisor", { hidden: true })
    .option(...STATE_OPTION)
    .option("--topology <file>")
    .option("--address-base <n>", "", "0")
    .option(...READY_TIMEOUT_OPTION)
    .action(async (flags: WorldFlags) => setExit(await runSupervisor(flags, io, false)));
  program
    .command("controller", { hidden: true })
    .description("run the controller of a local world")
    .option(...STATE_OPTION)
    .action(async (flags: WorldFlags) => runController(flags));
  program
    .command("agent", { hidden: true })
    .description("run the agent of one zone of a local world")
    .option(...STATE_OPTION)
    .requiredOption("--zone <zone>", "zone id, e.g. us-east/a")
    .action(async (flags: WorldFlags & { zone: string }) => runAgent(flags, io));
  program
    .command("router", { hidden: true })
    .description("run the router of one region of a local world")
    .option(...STATE_OPTION)
    .requiredOption("--region <region>", "region name")
    .action(async (flags: WorldFlags & { region: string }) => runRouter(flags, io));
}

/**
 * Loads what every role needs from the state directory: the topology as the supervisor compiled
 * it at start (not compiled again here; see topology/compiled.ts).
 */
function loadWorld(stateDir: string) {
  const state = new StateDir(stateDir);
  const world = state.readConfig();
  const topology = readCompiledTopology(state.compiledTopologyFile);
  const layout = buildLayout(topology, world.addressBase);
  return { state, world, topology, layout, tokens: state.tokens() };
}

function onStop(stop: () => Promise<void>): void {
  let stopping = false;
  const handler = () => {
    if (stopping) return;
    stopping = true;
    void stop().finally(() => process.exit(0));
  };
  process.on("SIGTERM", handler);
  process.on("SIGINT", handler);
}

async function runController(flags: WorldFlags): Promise<void> {
  const { topology, layout, tokens } = loadWorld(flags.stateDir);
  const { startController } = await import("../controller/server.js");
  const controller = await startController({ topology, layout, tokens, database: layout.controlDatabase });
  onStop(() => controller.close());
}

async function runAgent(flags: WorldFlags & { zone: string }, io: Io): Promise<void> {
  const { state, world, topology, layout, tokens } = loadWorld(flags.stateDir);
  if (!layout.zones.some((z) => z.id === flags.zone)) {
    throw new RingfenceError(
      "RINGFENCE_USAGE",
      `--zone: unknown zone "${flags.zone}"; use one of ${layout.zones.map((z) => z.id).join(", ")}`,
    );
  }
  const { Agent } = await import("../agent/agent.js");
  const agent = new Agent({
    zone: flags.zone,
    state,
    world,
    topology,
    layout,
    controllerUrl: `http://${layout.controller.host}:${layout.controller.port}`,
    agentToken: tokens.agent,
    ringfenceBin: RINGFENCE_BIN,
    log: (line) => io.stdout(`${new Date().toISOString()} ${line}\n`),
  });
  await agent.start();
  onStop(() => agent.stop());
}

async function runRouter(flags: WorldFlags & { region: string }, io: Io): Promise<void> {
  const { state, topology, layout, tokens } = loadWorld(flags.stateDir);
  if (!layout.regions.some((r) => r.name === flags.region)) {
    throw new RingfenceError(
      "RINGFENCE_USAGE",
      `--region: unknown region "${flags.region}"; use one of ${layout.regions.map((r) => r.name).join(", ")}`,
    );
  }
  const { runRouterProcess } = await import("../router/main.js");
  const router = await runRouterProcess({
    region: flags.region,
    state,
    topology,
    layout,
    tokens,
    log: (line) => io.stdout(`${new Date().toISOString()} ${line}\n`),
  });
  onStop(() => router.stop());
}
