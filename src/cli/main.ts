#!/usr/bin/env node
/**
 * The `ringfence` command.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Command, CommanderError } from "commander";
import { PACKAGE_ROOT } from "../topology/load.js";
import { registerDemo } from "./demo.js";
import { registerDrain } from "./drain.js";
import { registerFailover } from "./failover.js";
import { registerLoad } from "./load.js";
import { EXIT, type Io, processIo, reportError } from "./output.js";
import { registerPlan } from "./plan.js";
import { registerWorld } from "./world.js";

/** Runs the CLI with `argv` (without node and script) and resolves with the exit code. */
export async function main(argv: readonly string[], io: Io = processIo): Promise<number> {
  const version = (
    JSON.parse(readFileSync(join(PACKAGE_ROOT, "package.json"), "utf8")) as { version: string }
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
  registerPlan(program, io, setExit);
  registerWorld(program, io, setExit);
  registerDemo(program);
  registerDrain(program, io, setExit);
  registerFailover(program, io, setExit);
  registerLoad(program, io, setExit);
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
