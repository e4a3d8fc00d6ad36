#!/usr/bin/env node
/**
 * The `ringfence` command.
 */
import { readFileSync } from "node:fs";
import type { Command } from "commander";
import { defineNavigator } from "../lib/navigator.js";
import { EXIT, type Io, processIo, reportError } from "./output.js";

defineNavigator(); // before anything loads pg (see navigator.ts)

type Register = (program: Command, io: Io, setExit: (code: number) => void) => void;

/**
 * Every command group and the commands it registers, loaded only when asked for: a service
 * instance started as `ringfence demo directory` or an agent started as `ringfence agent` loads
 * its own code and not the planner's, the load generator's or the supervisor's (each world runs
 * dozens of these processes, so what one of them loads is paid for dozens of times in start-up
 * time and memory). Help, `--version` and unknown commands load every group.
 */
const GROUPS: readonly { readonly commands: readonly string[]; readonly load: () => Promise<Register> }[] = [
  { commands: ["plan"], load: async () => (await import("./plan.js")).registerPlan },
  { commands: ["up", "down", "status"], load: async () => (await import("./world.js")).registerWorld },
  {
    commands: ["world-supervisor", "controller", "agent", "router"],
    load: async () => (await import("./roles.js")).registerRoles,
  },
  { commands: ["demo"], load: async () => (await import("./demo.js")).registerDemo },
  {
    commands: ["drain", "undrain", "drains"],
    load: async () => (await import("./drain.js")).registerDrain,
  },
  {
    commands: ["failover", "switchover"],
    load: async () => (await import("./failover.js")).registerFailover,
  },
  { commands: ["load", "audit"], load: async () => (await import("./load.js")).registerLoad },
];

/** The groups `argv` needs: the one naming its command, or all of them. */
function groupsFor(argv: readonly string[]): typeof GROUPS {
  const name = argv[0];
  const group = GROUPS.find((g) => name !== undefined && g.commands.includes(name));
  return group ? [group] : GROUPS;
}

/** Runs the CLI with `argv` (without node and script) and resolves with the exit code. */
export async function main(argv: readonly string[], io: Io = processIo): Promise<number> {
  // A service instance of the bundled demo (`ringfence demo directory`, dozens per world) goes
  // straight to its program, without commander's parsing and the memory it takes.
  if (argv.length === 2 && argv[0] === "demo") {
    const run = (await import("./demo.js")).demoProgram(argv[1] as string);
    if (run) {
      await run();
      return EXIT.ok;
    }
  }
  const { Command, CommanderError } = await import("commander");
  const version = (
    JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string }
  ).version;
  let exitCode: number = EXIT.ok;
  const program = new Command()
    .name("ringfence")
    .description(
      "Active/active across regions: cells, out-of-region commits, safe failover, rings, chaos, and a planner.",
    )
    .version(version)
    .exitOverride()
    .configureOutput({ writeOut: io.stdout, writeErr: io.stderr })
    .showSuggestionAfterError(true);
  const setExit = (code: number) => {
    exitCode = code;
  };
  for (const group of groupsFor(argv)) (await group.load())(program, io, setExit);
  try {
    await program.parseAsync([...argv], { from: "user" });
  } catch (err) {
    if (err instanceof CommanderError) {
      if (
        err.code === "commander.helpDisplayed" ||
        err.code === "commander.version" ||
        err.code === "commander.help"
      ) {
        return EXIT.ok;
      }
      return EXIT.badInput;
    }
    return reportError(err, io, argv.includes("--json"));
  }
  return exitCode;
}

// Run when executed as the bin (not when imported by tests).
const invokedAs = process.argv[1] ?? "";
if (/(?:^|[/\\])(?:main\.js|ringfence)$/.test(invokedAs)) {
  void main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
