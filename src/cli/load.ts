/**
 * `ringfence load` drives open-loop traffic through the routers of a local world and keeps a ledger of
 * every acknowledged write; `ringfence audit --ledger FILE` proves each one is still there. Failover
 * drills are judged by the two: see docs/operations.md, "Load and audit".
 */
import { randomBytes } from "node:crypto";
import type { Command } from "commander";
import { RingfenceError } from "../lib/errors.js";
import { parseDurationMs } from "../lib/units.js";
import { auditLedger } from "../load/audit.js";
import { runLoad } from "../load/generator.js";
import { LedgerWriter, readLedger } from "../load/ledger.js";
import { DEFAULT_MAX_IN_FLIGHT } from "../load/open-loop.js";
import { PostgresPrimaryReader } from "../load/primary.js";
import { progressLine, renderAudit, renderLoadSummary } from "../load/report.js";
import { ARRIVAL_PROCESSES, type ArrivalProcess } from "../load/schedule.js";
import { chooseTenants } from "../load/tenants.js";
import {
  fetchBucketTable,
  fetchPrimaries,
  openWorld,
  routerTargets,
  tenantAddressing,
  usersService,
} from "../load/world.js";
import { EXIT, type Io } from "./output.js";
import { DEFAULT_STATE_DIR } from "./paths.js";

interface LoadFlags {
  rps: string;
  tenants: string;
  writeRatio: string;
  duration: string;
  ledger?: string;
  region: string[];
  stateDir: string;
  json?: boolean;
  timeout: string;
  arrivals: string;
  maxInFlight: string;
  seed?: string;
}

interface AuditFlags {
  ledger: string;
  stateDir: string;
  json?: boolean;
  timeout: string;
}

function usage(message: string): RingfenceError {
  return new RingfenceError("RINGFENCE_USAGE", message);
}

function positiveNumber(flag: string, value: string, max: number): number {
  const n = Number(value);
  if (value.trim() === "" || !Number.isFinite(n) || n <= 0 || n > max) {
    throw usage(`${flag}: expected a number above 0 and at most ${max}, got "${value}"`);
  }
  return n;
}

function positiveInteger(flag: string, value: string, max: number): number {
  const n = positiveNumber(flag, value, max);
  if (!Number.isInteger(n)) throw usage(`${flag}: expected a whole number, got "${value}"`);
  return n;
}

/** `30s`, `5m`, `1.5h`, `250ms`, or a bare number of seconds. */
function durationMs(flag: string, value: string, bareUnitMs: number): number {
  const bare = Number(value);
  const parsed = value.trim() !== "" && Number.isFinite(bare) ? bare * bareUnitMs : parseDurationMs(value);
  if (parsed === undefined || !(parsed > 0)) {
    throw usage(`${flag}: expected a duration such as 30s, 5m or 250ms, got "${value}"`);
  }
  return parsed;
}

function parseLoadFlags(flags: LoadFlags) {
  const writeRatio = Number(flags.writeRatio);
  if (flags.writeRatio.trim() === "" || !(writeRatio >= 0 && writeRatio <= 1)) {
    throw usage(
      `--write-ratio: expected a share between 0 and 1 (0.3 = 30% writes), got "${flags.writeRatio}"`,
    );
  }
  if (!(ARRIVAL_PROCESSES as readonly string[]).includes(flags.arrivals)) {
    throw usage(`--arrivals: use ${ARRIVAL_PROCESSES.join(" or ")}, got "${flags.arrivals}"`);
  }
  const seed = flags.seed === undefined ? undefined : Number(flags.seed);
  if (seed !== undefined && !Number.isInteger(seed))
    throw usage(`--seed: expected an integer, got "${flags.seed}"`);
  return {
    rps: positiveNumber("--rps", flags.rps, 1_000_000),
    tenants: positiveInteger("--tenants", flags.tenants, 10_000_000),
    writeRatio,
    durationMs: durationMs("--duration", flags.duration, 1_000),
    timeoutMs: durationMs("--timeout", flags.timeout, 1),
    arrivals: flags.arrivals as ArrivalProcess,
    maxInFlight: positiveInteger("--max-in-flight", flags.maxInFlight, 1_000_000),
    regions: flags.region.flatMap((r) => r.split(",")).filter((r) => r !== ""),
    seed,
  };
}

/** `ringfence-ledger-20250102T030405Z.jsonl`. */
function defaultLedgerFile(now: Date): string {
  return `ringfence-ledger-${now.toISOString().replace(/[-:]/g, "").replace(/\.\d+/, "")}.jsonl`;
}

const collect = (value: string, previous: string[]) => [...previous, value];

export function registerLoad(program: Command, io: Io, setExit: (code: number) => void): void {
  program
    .command("load")
    .description("drive open-loop traffic through the routers and keep a ledger of acknowledged writes")
    .option("--rps <n>", "arrivals per second (started on schedule, never waiting for answers)", "100")
    .option("--tenants <n>", "tenants to spread the load over (every cell gets some)", "100")
    .option("--write-ratio <w>", "share of arrivals that are writes, 0..1", "0.5")
    .option("--duration <d>", "how long to run: 30s, 5m (a bare number is seconds)", "60s")
    .option("--ledger <file>", "where acknowledged writes go (default ringfence-ledger-<timestamp>.jsonl)")
    .option("--region <name>", "send only through this region's router (repeatable)", collect, [])
    .option("--timeout <ms>", "deadline of each request in ms (or a duration such as 5s)", "5000")
    .option("--arrivals <process>", `arrival process: ${ARRIVAL_PROCESSES.join(" | ")}`, "uniform")
    .option(
      "--max-in-flight <n>",
      "requests in flight at most; arrivals beyond are client-overload errors",
      String(DEFAULT_MAX_IN_FLIGHT),
    )
    .option("--seed <n>", "seed of tenant and operation choices (and Poisson gaps)")
    .option("--state-dir <dir>", "the world's state directory", DEFAULT_STATE_DIR)
    .option("--json", "print the summary as JSON on stdout")
    .action(async (flags: LoadFlags) => {
      const options = parseLoadFlags(flags);
      const world = openWorld(flags.stateDir);
      const routers = routerTargets(world, options.regions);
      const tenants = chooseTenants({ count: options.tenants, table: await fetchBucketTable(world) });
      const startedAt = new Date();
      const ledgerFile = flags.ledger ?? defaultLedgerFile(startedAt);
      const ledger = await LedgerWriter.open(ledgerFile);
      const abort = new AbortController();
      const quit = () => process.exit(130);
      const onSigint = () => {
        io.stderr("\nstopping: no new arrivals, waiting for requests in flight (Ctrl-C again to quit now)\n");
        abort.abort();
        process.once("SIGINT", quit);
      };
      process.once("SIGINT", onSigint);
      io.stderr(
        `load: ${options.rps} rps (${options.arrivals}) for ${options.durationMs / 1000} s, ${tenants.length} tenants, ` +
          `${Math.round(options.writeRatio * 100)}% writes, through ${routers.map((r) => r.region).join(", ")}; ledger ${ledgerFile}\n`,
      );
      let summary: Awaited<ReturnType<typeof runLoad>>;
      try {
        summary = await runLoad(
          {
            rps: options.rps,
            durationMs: options.durationMs,
            writeRatio: options.writeRatio,
            tenants,
            routers,
            timeoutMs: options.timeoutMs,
            runId: `${startedAt.getTime().toString(36)}${randomBytes(3).toString("hex")}`,
            service: usersService(world.topology),
            maxInFlight: options.maxInFlight,
            arrivals: options.arrivals,
            ...(options.seed === undefined ? {} : { seed: options.seed }),
            ...tenantAddressing(world.topology),
          },
          {
            ledger,
            signal: abort.signal,
            onProgress: (p) => io.stderr(io.isTTY ? `\r\x1b[K${progressLine(p)}` : `${progressLine(p)}\n`),
          },
        );
      } finally {
        process.removeListener("SIGINT", onSigint);
        process.removeListener("SIGINT", quit);
        if (io.isTTY) io.stderr("\n");
        await ledger.close();
      }
      io.stdout(
        flags.json
          ? `${JSON.stringify({ ...summary, ledger: { file: ledgerFile, entries: summary.writes.acknowledged } }, null, 2)}\n`
          : renderLoadSummary(summary, ledgerFile, io.isTTY),
      );
      setExit(EXIT.ok);
    });

  program
    .command("audit")
    .description(
      "prove that every write in a load ledger is still there (exit 1 when any is lost or mismatched)",
    )
    .requiredOption("--ledger <file>", "the ledger `ringfence load` wrote")
    .option("--timeout <ms>", "deadline of each router read in ms (or a duration such as 5s)", "5000")
    .option("--state-dir <dir>", "the world's state directory", DEFAULT_STATE_DIR)
    .option("--json", "print the report as JSON on stdout")
    .action(async (flags: AuditFlags) => {
      const timeoutMs = durationMs("--timeout", flags.timeout, 1);
      const read = await readLedger(flags.ledger);
      if (read.entries.length === 0 && read.malformed.length > 0) {
        throw usage(
          `--ledger ${flags.ledger}: no line is a ledger entry; pass the file \`ringfence load\` wrote`,
        );
      }
      const world = openWorld(flags.stateDir);
      const total = read.entries.length;
      let checked = 0;
      const progress = setInterval(() => {
        io.stderr(
          io.isTTY ? `\r\x1b[Kaudit: ${checked}/${total} checked` : `audit: ${checked}/${total} checked\n`,
        );
      }, 1_000);
      progress.unref();
      let report: Awaited<ReturnType<typeof auditLedger>>;
      try {
        report = await auditLedger({
          entries: read.entries,
          routers: routerTargets(world),
          primary: new PostgresPrimaryReader({
            databases: world.layout.databases,
            primaries: () => fetchPrimaries(world),
          }),
          timeoutMs,
          onChecked: (n) => {
            checked = n;
          },
          ...tenantAddressing(world.topology),
        });
      } finally {
        clearInterval(progress);
        if (io.isTTY && total > 0) io.stderr("\r\x1b[K");
      }
      io.stdout(
        flags.json
          ? `${JSON.stringify(
              {
                ledger: {
                  file: flags.ledger,
                  entries: total,
                  malformed: read.malformed,
                  tornTail: read.tornTail ?? null,
                },
                ...report,
              },
              null,
              2,
            )}\n`
          : renderAudit(report, flags.ledger, read, io.isTTY),
      );
      setExit(report.passed ? EXIT.ok : EXIT.checkFailed);
    });
}
