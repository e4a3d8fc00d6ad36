/**
 * `ringfence failover status [--json]`: every cell's primary, phase and the failover under way
 * (with the estimated loss when it waits for consent), and the recent history.
 * `ringfence failover approve CELL --accept-data-loss --reason TEXT` (operator): lets a cell in
 * `awaiting-consent` promote its best standby, accepting the estimated loss; recorded with the reason.
 */
import type { Command } from "commander";
import { RingfenceError } from "../lib/errors.js";
import type { CellState } from "../world/contracts.js";
import { call } from "./controller-client.js";
import { EXIT, type Io } from "./output.js";
import { DEFAULT_STATE_DIR } from "./paths.js";

interface CellView {
  readonly cell: CellState;
  readonly phase: string;
  readonly failover: {
    readonly from?: string;
    readonly reason?: string;
    readonly startedAtMs?: number;
    readonly decision?: { target: string; flushLsn: string; proof?: string; reason?: string };
    readonly estimate?: { bytes: number; seconds: number; basis: string };
  } | null;
}

interface FailoverDoc {
  readonly durability: "strict" | "available";
  readonly cells: readonly CellView[];
  readonly history: readonly {
    cell: string;
    kind: string;
    startedAt: string;
    record: { from?: string; totalMs?: number; decision?: { target?: string } };
  }[];
  readonly reconcilerError?: { message: string };
}

export function registerFailover(program: Command, io: Io, setExit: (code: number) => void): void {
  registerSwitchover(program, io, setExit);
  const failover = program.command("failover").description("cell failover: status and operator consent");
  failover
    .command("status")
    .description("every cell's primary and failover phase, and recent failovers")
    .option("--state-dir <dir>", "the world's state directory", DEFAULT_STATE_DIR)
    .option("--json", "print the document as JSON")
    .action(async (flags: { stateDir: string; json?: boolean }) => {
      const doc = (await call(flags.stateDir, "GET", "/v1/failover", "reader")) as FailoverDoc;
      io.stdout(flags.json ? `${JSON.stringify(doc, null, 2)}\n` : render(doc));
      setExit(EXIT.ok);
    });
  failover
    .command("approve")
    .description(
      "promote the best standby of a cell awaiting consent, accepting the estimated loss (operator)",
    )
    .argument("<cell>", "the cell, e.g. cell-2")
    .option("--accept-data-loss", "required: acknowledges that acknowledged writes may be lost")
    .option("--reason <text>", "why (recorded in the event log)")
    .option("--state-dir <dir>", "the world's state directory", DEFAULT_STATE_DIR)
    .action(async (cell: string, flags: { acceptDataLoss?: boolean; reason?: string; stateDir: string }) => {
      if (!flags.acceptDataLoss) {
        throw new RingfenceError(
          "RINGFENCE_USAGE",
          `--accept-data-loss: approving promotes a standby that may lack acknowledged writes; see the estimate with \`ringfence failover status\` and add --accept-data-loss to proceed`,
        );
      }
      if (!flags.reason || flags.reason.trim() === "") {
        throw new RingfenceError(
          "RINGFENCE_USAGE",
          '--reason: say why (it is recorded), e.g. --reason "region lost"',
        );
      }
      const before = (await call(flags.stateDir, "GET", "/v1/failover", "reader")) as FailoverDoc;
      const estimate = before.cells.find((c) => c.cell.cell === cell)?.failover?.estimate;
      const after = (await call(
        flags.stateDir,
        "POST",
        `/v1/cells/${encodeURIComponent(cell)}/failover/approve`,
        "operator",
        {
          reason: flags.reason,
          acceptDataLoss: true,
        },
      )) as CellView;
      io.stdout(
        `${cell}: promoting ${after.cell.primary}${estimate ? ` (accepted estimate: ${estimate.bytes} bytes, up to ${estimate.seconds.toFixed(1)} s of writes)` : ""}; follow with \`ringfence failover status\`\n`,
      );
      setExit(EXIT.ok);
    });
}

/** `ringfence switchover CELL --to REGION`: planned, zero loss; waits and prints how long writes paused. */
function registerSwitchover(program: Command, io: Io, setExit: (code: number) => void): void {
  program
    .command("switchover")
    .description("move a cell's primary to another of its regions, planned and without loss (operator)")
    .argument("<cell>", "the cell, e.g. cell-0")
    .requiredOption("--to <region>", "the region whose standby becomes primary")
    .option("--reason <text>", "why (recorded in the event log)")
    .option("--timeout <seconds>", "how long to wait for it to finish", "60")
    .option("--state-dir <dir>", "the world's state directory", DEFAULT_STATE_DIR)
    .option("--json", "print the finished switchover as JSON")
    .action(
      async (
        cell: string,
        flags: { to: string; reason?: string; timeout: string; stateDir: string; json?: boolean },
      ) => {
        if (!flags.reason || flags.reason.trim() === "") {
          throw new RingfenceError(
            "RINGFENCE_USAGE",
            '--reason: say why (it is recorded), e.g. --reason "maintenance"',
          );
        }
        const timeoutMs = Number(flags.timeout) * 1000;
        if (!(timeoutMs > 0))
          throw new RingfenceError("RINGFENCE_USAGE", `--timeout: a number of seconds, got ${flags.timeout}`);
        const started = Date.now();
        await call(flags.stateDir, "POST", `/v1/cells/${encodeURIComponent(cell)}/switchover`, "operator", {
          to: flags.to,
          reason: flags.reason,
        });
        for (;;) {
          const doc = (await call(flags.stateDir, "GET", "/v1/failover", "reader")) as FailoverDoc;
          const view = doc.cells.find((c) => c.cell.cell === cell);
          const done = doc.history.find((h) => h.cell === cell && Date.parse(h.startedAt) >= started - 1_000);
          if (view?.phase === "serving" && done) {
            const steps = (done.record as { steps?: Record<string, number> }).steps ?? {};
            const pauseMs = (steps.unfenced ?? steps.aborted ?? 0) - (steps.fenced ?? 0);
            if (flags.json) io.stdout(`${JSON.stringify({ ...done, pauseMs }, null, 2)}\n`);
            else if (done.kind.endsWith("aborted"))
              io.stdout(
                `${cell}: switchover aborted, ${view.cell.primary} stays primary (writes paused ${pauseMs} ms)\n`,
              );
            else io.stdout(`${cell}: ${view.cell.primary} is primary; writes paused ${pauseMs} ms\n`);
            setExit(done.kind.endsWith("aborted") ? EXIT.checkFailed : EXIT.ok);
            return;
          }
          if (Date.now() - started > timeoutMs) {
            throw new RingfenceError(
              "RINGFENCE_USAGE",
              `--timeout: ${cell} is still ${view?.phase ?? "unknown"} after ${flags.timeout} s; follow it with ringfence failover status`,
            );
          }
          await new Promise((r) => setTimeout(r, 100));
        }
      },
    );
}

function render(doc: FailoverDoc): string {
  const lines = [
    `durability policy: ${doc.durability} (${doc.durability === "strict" ? "with no out-of-region standby left, writes wait" : "with no out-of-region standby left, commits go asynchronous"})`,
    "",
    "cell        primary  epoch  phase              writers",
  ];
  for (const c of doc.cells) {
    lines.push(
      `${c.cell.cell.padEnd(12)}${c.cell.primary.padEnd(9)}${String(c.cell.epoch).padEnd(7)}${c.phase.padEnd(19)}${c.cell.fenced ? "fenced" : "open"}${c.cell.commit === "async" ? " (async commit)" : ""}`,
    );
    const f = c.failover;
    if (!f) continue;
    if (f.reason) lines.push(`    from ${f.from}: ${f.reason}`);
    if (f.decision)
      lines.push(
        `    target ${f.decision.target} at ${f.decision.flushLsn}: ${f.decision.proof ?? f.decision.reason ?? ""}`,
      );
    if (c.phase === "awaiting-consent" && f.estimate) {
      lines.push(
        `    estimated loss: ${f.estimate.bytes} bytes, up to ${f.estimate.seconds.toFixed(1)} s of writes (${f.estimate.basis})`,
        `    approve: ringfence failover approve ${c.cell.cell} --accept-data-loss --reason "..."`,
      );
    }
  }
  if (doc.history.length > 0) {
    lines.push("", "recent failovers");
    for (const h of doc.history.slice(0, 10)) {
      lines.push(
        `  ${h.startedAt}  ${h.cell}  ${h.kind}  ${h.record.from ?? "?"} -> ${h.record.decision?.target ?? "?"}${h.record.totalMs === undefined ? "" : `  ${h.record.totalMs} ms`}`,
      );
    }
  }
  if (doc.reconcilerError)
    lines.push("", `!! the failover reconciler is failing: ${doc.reconcilerError.message}`);
  return `${lines.join("\n")}\n`;
}
