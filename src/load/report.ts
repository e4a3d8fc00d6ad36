/**
 * Terminal rendering of a load run (progress lines and the final summary) and of an audit.
 */
import pc from "picocolors";
import type { AuditReport, FindingKind } from "./audit.js";
import type { LoadProgress, LoadSummary } from "./generator.js";
import type { LedgerRead } from "./ledger.js";
import type { GroupSummary } from "./stats.js";

const ms = (n: number | null | undefined): string =>
  n === null || n === undefined ? "-" : `${n.toFixed(1)}`;

/** One compact progress line: elapsed, achieved rate, errors, p50/p99, in flight, acknowledged writes. */
export function progressLine(p: LoadProgress): string {
  const rps = p.windowMs > 0 ? (p.window.requests * 1000) / p.windowMs : 0;
  const errPct = p.window.requests > 0 ? (p.window.errors / p.window.requests) * 100 : 0;
  return (
    `${(p.elapsedMs / 1000).toFixed(0).padStart(4)}s  ${rps.toFixed(0).padStart(6)} rps  ` +
    `errors ${p.window.errors} (${errPct.toFixed(1)}%)  p50 ${ms(p.window.p50Ms)} ms  p99 ${ms(p.window.p99Ms)} ms  ` +
    `in flight ${p.inFlight}  acked writes ${p.acknowledgedWrites}`
  );
}

function table(header: readonly string[], rows: readonly (readonly string[])[]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0)))
      .join("  ")
      .trimEnd();
  return [line(header), ...rows.map(line)];
}

function groupRow(name: string, g: GroupSummary): string[] {
  const classes = Object.entries(g.errorsByClass)
    .map(([k, v]) => `${k}:${v}`)
    .join(" ");
  return [
    name,
    String(g.requests),
    String(g.errors),
    g.availabilityPct === null ? "-" : `${g.availabilityPct.toFixed(3)}%`,
    ms(g.latencyMs?.p50),
    ms(g.latencyMs?.p90),
    ms(g.latencyMs?.p99),
    ms(g.latencyMs?.max),
    classes,
  ];
}

/** The final summary of a load run. */
export function renderLoadSummary(s: LoadSummary, ledgerFile: string, color: boolean): string {
  const c = pc.createColors(color);
  const header = [
    "",
    "requests",
    "errors",
    "avail",
    "p50 ms",
    "p90 ms",
    "p99 ms",
    "max ms",
    "errors by class",
  ];
  const rows: string[][] = [groupRow("total", s.stats.total)];
  const section = (title: string, groups: Readonly<Record<string, GroupSummary>>) => {
    for (const [name, g] of Object.entries(groups)) rows.push(groupRow(`${title} ${name}`, g));
  };
  section("service", s.stats.byService);
  section("operation", s.stats.byOperation);
  section("cell", s.stats.byCell);
  section("router", s.stats.byRegion);
  const lines = [
    c.bold(
      `ringfence load ${s.runId}: ${s.started} of ${s.scheduled} arrivals started in ${(s.elapsedMs / 1000).toFixed(1)} s`,
    ),
    `  ${s.arrivals} arrivals at ${s.targetRps} rps (achieved ${s.achievedRps}), ${s.tenants} tenants, max ${s.maxInFlight} in flight, client lag at worst ${s.maxStartLagMs.toFixed(1)} ms`,
    `  writes: ${s.writes.attempted} attempted, ${s.writes.acknowledged} acknowledged (in the ledger), ${s.writes.failed} failed, ` +
      `${s.writes.unknownOutcome > 0 ? c.yellow(`${s.writes.unknownOutcome} unknown outcome`) : "0 unknown outcome"}`,
    `  reads: ${s.reads.attempted} attempted, ${s.reads.stale > 0 ? c.yellow(`${s.reads.stale} stale`) : "0 stale"} (an acknowledged write not visible with x-ringfence-min-lsn)`,
    ...(s.dropped > 0
      ? [
          c.yellow(
            `  ${s.dropped} arrivals dropped: ${s.maxInFlight} requests were already in flight (client-overload)`,
          ),
        ]
      : []),
    "",
    ...table(header, rows).map((l) => `  ${l}`),
    "",
    `ledger: ${ledgerFile}  (check it: ringfence audit --ledger ${ledgerFile})`,
  ];
  return `${lines.join("\n")}\n`;
}

const KIND_TITLE: Record<FindingKind, string> = {
  lost: "LOST",
  mismatched: "MISMATCHED",
  unverified: "UNVERIFIED",
  "router-read-failure": "router read failure",
};

const FINDING_ORDER: readonly FindingKind[] = ["lost", "mismatched", "unverified", "router-read-failure"];
const SHOWN_PER_KIND = 10;

/** The audit table, what was wrong with the ledger, and the first findings. */
export function renderAudit(r: AuditReport, ledgerFile: string, read: LedgerRead, color: boolean): string {
  const c = pc.createColors(color);
  const header = ["cell", "checked", "ok", "lost", "mismatched", "router read failures", "unverified"];
  const row = (name: string, x: Omit<AuditReport["byCell"][number], "cell">) => [
    name,
    String(x.checked),
    String(x.ok),
    String(x.lost),
    String(x.mismatched),
    String(x.routerReadFailures),
    String(x.unverified),
  ];
  const lines = [c.bold(`ringfence audit ${ledgerFile}: ${r.checked} acknowledged writes checked`)];
  if (read.tornTail) {
    lines.push(
      c.dim(`  line ${read.tornTail.line} is torn (${read.tornTail.bytes} bytes, no newline): ignored`),
    );
  }
  if (read.malformed.length > 0) {
    const first = read.malformed.slice(0, 5).map((m) => `${m.line} (${m.reason})`);
    lines.push(
      c.yellow(
        `  ${read.malformed.length} malformed lines ignored: ${first.join(", ")}${read.malformed.length > 5 ? ", …" : ""}`,
      ),
    );
  }
  lines.push(
    "",
    ...table(header, [...r.byCell.map((x) => row(x.cell, x)), row("total", r)]).map((l) => `  ${l}`),
  );
  const regions = Object.entries(r.routerReadFailuresByRegion);
  if (regions.length > 0) {
    lines.push(
      "",
      `router read failures by region: ${regions.map(([region, n]) => `${region} ${n}`).join(", ")}`,
    );
  }
  if (r.findings.length > 0) {
    lines.push("", `findings (up to ${SHOWN_PER_KIND} of each kind; --json lists up to 1,000 of each):`);
    for (const kind of FINDING_ORDER) {
      const ofKind = r.findings.filter((f) => f.kind === kind);
      for (const f of ofKind.slice(0, SHOWN_PER_KIND)) {
        const title = kind === "router-read-failure" ? c.yellow(KIND_TITLE[kind]) : c.red(KIND_TITLE[kind]);
        lines.push(
          `  ${title}  ${f.cell}  tenant ${f.tenant}  id ${f.id}  lsn ${f.lsn}  acked ${f.ackAt}: ${f.detail}`,
        );
      }
      const total = {
        lost: r.lost,
        mismatched: r.mismatched,
        unverified: r.unverified,
        "router-read-failure": r.routerReadFailures,
      }[kind];
      const shown = Math.min(ofKind.length, SHOWN_PER_KIND);
      if (total > shown) lines.push(c.dim(`  … and ${total - shown} more ${KIND_TITLE[kind]}`));
    }
  }
  lines.push("");
  if (r.passed) {
    lines.push(
      c.green(
        `PASS: every acknowledged write is on its cell's primary with the content written${r.routerReadFailures > 0 ? ` (${r.routerReadFailures} could not be read through a router)` : ""}`,
      ),
    );
  } else {
    const parts = [
      r.lost > 0 ? `${r.lost} lost` : "",
      r.mismatched > 0 ? `${r.mismatched} mismatched` : "",
      r.unverified > 0
        ? `${r.unverified} unverified (the primary could not be read; run the audit again)`
        : "",
    ].filter((p) => p !== "");
    lines.push(c.red(`FAIL: ${parts.join(", ")}`));
  }
  return `${lines.join("\n")}\n`;
}
