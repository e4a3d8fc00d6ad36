/**
 * How the CLI ends: errors printed with their code and every located problem, in text or JSON,
 * with a stable exit code and no stack trace unless RINGFENCE_DEBUG is set.
 */
import pc from "picocolors";
import { formatProblem, isRingfenceError, RingfenceError } from "../lib/errors.js";

/** Process exit codes shared by every command. */
export const EXIT = {
  ok: 0,
  /** A check the user asked to gate on failed (e.g. `plan --fail-on`). */
  checkFailed: 1,
  /** Bad input: usage, topology files, experiment files. */
  badInput: 2,
  /** A bug. */
  internal: 3,
} as const;

export interface Io {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  /** Whether stderr is a terminal (for colour and progress). */
  isTTY: boolean;
}

export const processIo: Io = {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
  isTTY: Boolean(process.stderr.isTTY),
};

/** Prints an error and returns the exit code it maps to. */
export function reportError(err: unknown, io: Io, json: boolean): number {
  const e = isRingfenceError(err)
    ? err
    : new RingfenceError("RINGFENCE_INTERNAL", `internal error: ${(err as Error)?.message ?? String(err)}`, {
        cause: err,
      });
  if (json) {
    io.stdout(`${JSON.stringify({ error: e.toJSON() }, null, 2)}\n`);
  } else {
    const c = pc.createColors(io.isTTY);
    io.stderr(`${c.red(c.bold("error"))} ${c.dim(e.code)}: ${e.message}\n`);
    for (const p of e.problems) io.stderr(`  ${formatProblem(p)}\n`);
  }
  if (e.code === "RINGFENCE_INTERNAL" && process.env.RINGFENCE_DEBUG) {
    io.stderr(`${(err as Error)?.stack ?? ""}\n`);
  }
  if (e.code === "RINGFENCE_INTERNAL") return EXIT.internal;
  if (e.code === "RINGFENCE_PLAN_GATE_FAILED") return EXIT.checkFailed;
  return EXIT.badInput;
}
