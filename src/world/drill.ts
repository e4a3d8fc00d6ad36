/**
 * What every drill (`npm run drill:failover`, `drill:switchover`, `drill:pause`) runs under: its
 * flags, and the rule that it stops every world it started whatever happens (an error, Ctrl-C,
 * SIGTERM). A drill measures, it is not a test: it prints figures and exits 1 when a target is
 * missed, 2 when it could not run, 130 when interrupted. The world is in drill-world.ts, the
 * arithmetic in drill-measures.ts.
 */
import { stopDrillWorlds } from "./drill-world.js";

/** The command-line flags every drill takes: `--rounds N`, `--keep`, `--address-base N`. */
export interface DrillArgs {
  readonly rounds: number;
  /** Keep the world's folder (logs, data) after the drill. */
  readonly keep: boolean;
  /** The second octet of the world's loopback addresses (127.N.x.y). */
  readonly addressBase: number;
}

/** Parses the drill flags in `argv`, with the drill's own defaults. */
export function drillArgs(
  argv: readonly string[],
  defaults: { rounds: number; addressBase: number },
): DrillArgs {
  const value = (flag: string): number | undefined => {
    const i = argv.indexOf(flag);
    if (i < 0) return undefined;
    const n = Number(argv[i + 1]);
    if (!Number.isInteger(n) || n < 0)
      throw new RangeError(`${flag}: expected a whole number, got ${argv[i + 1]}`);
    return n;
  };
  return {
    rounds: value("--rounds") ?? defaults.rounds,
    keep: argv.includes("--keep"),
    addressBase: value("--address-base") ?? defaults.addressBase,
  };
}

/**
 * Runs a drill: `body` resolves with whether every target was met (exit 0, else 1); a throw exits 2.
 * Ctrl-C or SIGTERM stops every world the drill started (and its children) before exiting with 130.
 */
export function runDrill(body: () => Promise<boolean>): void {
  let interrupted = false;
  const interrupt = () => {
    if (interrupted) return;
    interrupted = true;
    process.stderr.write("interrupted: stopping the world\n");
    void stopDrillWorlds().finally(() => process.exit(130));
  };
  process.once("SIGINT", interrupt);
  process.once("SIGTERM", interrupt);
  void body()
    .then(
      (passed) => {
        process.exitCode = passed ? 0 : 1;
      },
      (err: Error) => {
        process.stderr.write(`drill failed: ${err.stack ?? err.message}\n`);
        process.exitCode = 2;
      },
    )
    .finally(async () => {
      await stopDrillWorlds();
      if (!interrupted) process.exit();
    });
}
