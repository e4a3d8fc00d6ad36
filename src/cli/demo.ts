/**
 * `ringfence demo PROGRAM`: the bundled demo programs that the default topology runs as service
 * instances, configured from the environment an agent gives them.
 */
import type { Command } from "commander";
import { RingfenceError } from "../lib/errors.js";

const PROGRAMS = {
  directory: async () => (await import("../demo/directory.js")).main(),
  "directory-fallback": async () => (await import("../demo/fallback.js")).main(),
} as const;

/** The bundled demo program called `name`, or undefined. */
export function demoProgram(name: string): (() => Promise<void>) | undefined {
  return Object.hasOwn(PROGRAMS, name) ? PROGRAMS[name as keyof typeof PROGRAMS] : undefined;
}

export function registerDemo(program: Command): void {
  program
    .command("demo")
    .description(
      `run a bundled demo program: ${Object.keys(PROGRAMS).join(", ")} (configured by PORT, DATABASE_URL, ...)`,
    )
    .argument("<program>", Object.keys(PROGRAMS).join(" | "))
    .action(async (name: string) => {
      const run = demoProgram(name);
      if (!run) {
        throw new RingfenceError(
          "RINGFENCE_USAGE",
          `unknown demo program "${name}"; use one of ${Object.keys(PROGRAMS).join(", ")}`,
        );
      }
      await run();
    });
}
