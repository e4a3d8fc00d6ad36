/**
 * `ringfence drain KIND ID --reason TEXT`, `ringfence undrain DRAIN --reason TEXT`, `ringfence drains`:
 * take a region, zone or instance out of routing on every router (within a second), and put it back.
 * Operator actions: they use the operator token and are recorded in the event log with the reason.
 */
import type { Command } from "commander";
import { RingfenceError } from "../lib/errors.js";
import type { Drain } from "../world/contracts.js";
import { call } from "./controller-client.js";
import { EXIT, type Io } from "./output.js";
import { DEFAULT_STATE_DIR } from "./paths.js";

interface Flags {
  stateDir: string;
  reason?: string;
  json?: boolean;
}

const KINDS = ["region", "zone", "instance"] as const;

function requireReason(flags: Flags): string {
  if (!flags.reason || flags.reason.trim() === "") {
    throw new RingfenceError(
      "RINGFENCE_USAGE",
      '--reason: say why (it is recorded in the event log), e.g. --reason "zone maintenance"',
    );
  }
  return flags.reason;
}

export function registerDrain(program: Command, io: Io, setExit: (code: number) => void): void {
  program
    .command("drain")
    .description("take a region, zone or instance out of routing on every router (operator)")
    .argument("<kind>", KINDS.join(" | "))
    .argument("<id>", "region name, zone id (us-east/a) or instance id (directory/cell-0/us-east/1)")
    .option("--reason <text>", "why (recorded in the event log)")
    .option("--state-dir <dir>", "the world's state directory", DEFAULT_STATE_DIR)
    .option("--json", "print the drain as JSON")
    .action(async (kind: string, id: string, flags: Flags) => {
      if (!(KINDS as readonly string[]).includes(kind)) {
        throw new RingfenceError("RINGFENCE_USAGE", `unknown kind "${kind}"; use one of ${KINDS.join(", ")}`);
      }
      const drain = (await call(flags.stateDir, "POST", "/v1/drains", "operator", {
        target: { kind, id },
        reason: requireReason(flags),
      })) as Drain;
      io.stdout(
        flags.json
          ? `${JSON.stringify(drain, null, 2)}\n`
          : `${drain.id}: ${kind} ${id} drained on every router (undo: ringfence undrain ${drain.id} --reason ...)\n`,
      );
      setExit(EXIT.ok);
    });
  program
    .command("undrain")
    .description("put a drained region, zone or instance back into routing (operator)")
    .argument("<drain>", "drain id, e.g. drain-1 (see `ringfence drains`)")
    .option("--reason <text>", "why (recorded in the event log)")
    .option("--state-dir <dir>", "the world's state directory", DEFAULT_STATE_DIR)
    .action(async (id: string, flags: Flags) => {
      await call(flags.stateDir, "DELETE", `/v1/drains/${encodeURIComponent(id)}`, "operator", {
        reason: requireReason(flags),
      });
      io.stdout(`${id} removed: traffic returns within a second\n`);
      setExit(EXIT.ok);
    });
  program
    .command("drains")
    .description("list active drains")
    .option("--state-dir <dir>", "the world's state directory", DEFAULT_STATE_DIR)
    .option("--json", "print as JSON")
    .action(async (flags: Flags) => {
      const { drains } = (await call(flags.stateDir, "GET", "/v1/drains", "reader")) as { drains: Drain[] };
      if (flags.json) io.stdout(`${JSON.stringify(drains, null, 2)}\n`);
      else if (drains.length === 0) io.stdout("no drains\n");
      else
        for (const d of drains)
          io.stdout(`${d.id}  ${d.target.kind} ${d.target.id}  since ${d.createdAt}  ${d.reason}\n`);
      setExit(EXIT.ok);
    });
}
