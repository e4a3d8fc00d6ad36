/**
 * `ringfence plan [FILE]`: judge a topology before it runs.
 */
import type { Command } from "commander";
import { RingfenceError } from "../lib/errors.js";
import { failedGates, GATES, type Gate, plan } from "../plan/plan.js";
import { renderPlan } from "../plan/render.js";
import { loadTopology } from "../topology/load.js";
import { EXIT, type Io } from "./output.js";

export interface PlanFlags {
  json?: boolean;
  failOn?: string;
  simulate?: string;
  seed?: string;
}

export function registerPlan(program: Command, io: Io, setExit: (code: number) => void): void {
  program
    .command("plan")
    .description(
      "judge a topology before it runs: availability, blast radius, SPOFs, capacity, RTO/RPO, cost",
    )
    .argument("[file]", "topology file, or a bundled name", "default")
    .option("--json", "print the report as JSON")
    .option("--fail-on <checks>", `exit 1 when any of these checks fails: ${GATES.join(",")}`)
    .option("--simulate <years>", "Monte Carlo estimate over this many simulated years")
    .option("--seed <n>", "seed of the simulation", "1")
    .action((file: string, flags: PlanFlags) => {
      setExit(runPlan(file, flags, io));
    });
}

export function runPlan(file: string | undefined, flags: PlanFlags, io: Io): number {
  const gates = parseGates(flags.failOn);
  const years = flags.simulate === undefined ? 0 : parseWhole(flags.simulate, "--simulate", 1, 1_000_000);
  const seed = parseWhole(flags.seed ?? "1", "--seed", 0, 2 ** 32 - 1);
  const topology = loadTopology(file);
  const progress = io.isTTY && years > 0;
  const report = plan(topology, {
    simulateYears: years,
    seed,
    ...(progress
      ? {
          onSimulationProgress: (done: number, total: number) => {
            io.stderr(
              `\rsimulating year ${done}/${total} (${Math.round((done / total) * 100)}%)${done === total ? "\n" : ""}`,
            );
          },
        }
      : {}),
  });
  io.stdout(
    flags.json ? `${JSON.stringify(report, null, 2)}\n` : `${renderPlan(report, { color: io.isTTY })}\n`,
  );
  const failed = failedGates(report, gates);
  if (failed.length > 0) {
    if (!flags.json) io.stderr(`plan checks failed: ${failed.join(", ")} (--fail-on ${gates.join(",")})\n`);
    return EXIT.checkFailed;
  }
  return EXIT.ok;
}

function parseGates(value: string | undefined): Gate[] {
  if (value === undefined) return [];
  const names = value
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
  const unknown = names.filter((n) => !(GATES as readonly string[]).includes(n));
  if (unknown.length > 0) {
    throw new RingfenceError(
      "RINGFENCE_USAGE",
      `--fail-on: unknown check ${unknown.map((u) => `"${u}"`).join(", ")}; use a comma-separated list of ${GATES.join(", ")}`,
    );
  }
  return names as Gate[];
}

function parseWhole(value: string, flag: string, min: number, max: number): number {
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n < min || n > max) {
    throw new RingfenceError(
      "RINGFENCE_USAGE",
      `${flag}: must be a whole number from ${min} to ${max}, got "${value}"`,
    );
  }
  return n;
}
