#!/usr/bin/env node
/**
 * The `ringfence` command.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Command, CommanderError } from "commander";
import { PACKAGE_ROOT } from "../topology/load.js";
import { EXIT, type Io, processIo, reportError } from "./output.js";
import { registerPlan } from "./plan.js";

/** Runs the CLI with `argv` (without node and script) and returns the exit code. */
export function main(argv: readonly string[], io: Io = processIo): number {
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
  registerPlan(program, io, (code) => {
    exitCode = code;
  });
  try {
    program.parse([...argv], { from: "user" });
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
  process.exitCode = main(process.argv.slice(2));
}
