/**
 * The terminal rendering of a plan report: one section per question, each ending in a verdict.
 */
import pc from "picocolors";
import { formatAvailability, formatDuration, formatShare, nines } from "../lib/units.js";
import type { PlanReport } from "./plan.js";

export interface RenderOptions {
  readonly color?: boolean;
}

export function renderPlan(report: PlanReport, options: RenderOptions = {}): string {
  const c = pc.createColors(options.color ?? false);
  const ok = (pass: boolean, text = pass ? "ok" : "FAIL") =>
    pass ? c.green(`✓ ${text}`) : c.red(`✗ ${text}`);
  const lines: string[] = [];
  const out = (s = "") => lines.push(s);
  const heading = (n: number, title: string) => {
    out();
    out(c.bold(`${n}. ${title}`));
  };
  const t = report.topology;
  out(
    c.bold(`ringfence plan: ${t.name}`) +
      c.dim(
        ` (${t.source}) — ${t.regions} regions, ${t.zones} zones, ${t.cells} cells × ${t.replicas} replica regions, ANY ${t.syncQuorum} sync, ${t.services} service(s), ${t.tenants.toLocaleString("en-US")} tenants`,
      ),
  );

  heading(
    1,
    "Composite availability per SLO scenario (worst cell; components in series multiply, redundant ones 1 − Π(1 − a))",
  );
  for (const a of report.availability) {
    out(
      `  ${a.service}/${a.scenario}${a.writes ? c.dim(" (writes)") : ""}: ${formatAvailability(a.worstCellAvailability)} ` +
        `${c.dim(`(${fmtNines(a.worstCellAvailability)}; tenant mean ${formatAvailability(a.availability)})`)} ` +
        `target ${formatAvailability(a.target)} ${ok(a.meetsTarget, a.meetsTarget ? "meets" : "misses")}`,
    );
    for (const link of a.chain) {
      const mark = link.label === a.weakestLink ? c.yellow(" ← costs the most nines") : "";
      out(
        `      ${pad(formatAvailability(link.availability), 16)} ${pad(fmtNines(link.availability), 11)} ${pad(formatShare(link.unavailabilityShare), 7)} ${link.label}${mark}`,
      );
    }
  }

  heading(2, "Blast radius of one failure (worst case of each)");
  out(
    c.dim(
      `  ${pad("failure", 10)} ${pad("worst", 36)} ${pad("exposed", 9)} ${pad("lose service", 13)} load lost`,
    ),
  );
  for (const u of report.blastRadius.units) {
    out(
      `  ${pad(u.unit, 10)} ${pad(u.worst, 36)} ${pad(formatShare(u.exposedTenants), 9)} ${pad(formatShare(u.lostTenants), 13)} ${formatShare(u.lostLoad)}`,
    );
  }
  const br = report.blastRadius;
  out(
    c.dim(
      "  exposed: tenants with something in the failed unit (retries, failover); lose service: until repair",
    ),
  );
  for (const { target, cells } of br.cellsForTarget) {
    const meets = br.worstCellShare <= target + 1e-12;
    out(
      `  one cell failure reaches ${formatShare(br.worstCellShare)} of tenants; ≤ ${formatShare(target)} needs ≥ ${cells} cells ` +
        (br.target !== undefined
          ? ok(meets, meets ? "meets objectives.blastRadius" : `have ${t.cells}`)
          : ""),
    );
  }

  heading(3, "Single points of failure");
  if (report.singlePointsOfFailure.length === 0)
    out(`  ${ok(true, "none: every scenario survives the loss of any one component")}`);
  for (const s of report.singlePointsOfFailure) {
    const what =
      s.scenarios.length > 0
        ? `breaks ${s.scenarios.join(", ")} for ${formatShare(s.tenants)} of tenants`
        : "";
    out(`  ${c.red("✗")} ${s.label} ${c.dim(`[${s.component}]`)} ${what}`);
    out(`      fix: ${s.fix}`);
  }

  heading(4, "Capacity headroom (peak load, no new capacity)");
  for (const s of report.capacity.services) {
    out(
      `  ${s.service} at ${s.peakRps.toLocaleString("en-US")} req/s peak: ${ok(s.ok, s.ok ? "carries the peak after the worst zone and region loss" : "overloaded")}`,
    );
    const cases = [s.normal, s.worstZone, s.worstRegion].filter((x) => x !== undefined);
    out(
      c.dim(
        `      ${pad("region", 16)} ${cases.map((x) => pad(x.lost === "normal" ? "normal" : `lose ${x.lost.split(":")[1]}`, 22)).join(" ")}`,
      ),
    );
    const regions = s.normal.regions.map((r) => r.region);
    const shown = regions.length > 12 ? worstRegions(cases, 10) : regions;
    for (const region of shown) {
      out(
        `      ${pad(region, 16)} ${cases
          .map((x) => {
            const r = x.regions.find((y) => y.region === region);
            return pad(r && r.capacityRps > 0 ? formatShare(r.utilisation) : "—", 22);
          })
          .join(" ")}`,
      );
    }
    if (shown.length < regions.length)
      out(c.dim(`      (${regions.length - shown.length} more regions; --json lists all)`));
    for (const x of cases) {
      const flag =
        x.maxUtilisation > 1 ? c.red(`, ${formatShare(x.shortfall)} of peak cannot be served`) : "";
      out(
        c.dim(`      ${x.lost}: busiest cell ${x.worstCellRegion} at ${formatShare(x.maxUtilisation)}`) +
          flag,
      );
    }
  }
  if (report.capacity.unchecked.length > 0) {
    out(c.yellow(`  not checked (no peakRps): ${report.capacity.unchecked.join(", ")}`));
  }

  heading(5, "Objectives (RTO / RPO)");
  for (const o of report.objectives) {
    out(
      `  ${o.service} (tier ${o.tier}): RTO ${formatDuration(o.rtoMs)} vs ≈ ${formatDuration(o.estimatedRtoMs)} ${ok(o.rtoMet, o.rtoMet ? "met" : "missed")}; ` +
        `RPO ${formatDuration(o.rpoMs)} vs ${o.designRpoMs === 0 ? "0 (synchronous out-of-region commit)" : `≤ ${formatDuration(o.designRpoMs)} (asynchronous)`} ${ok(o.rpoMet, o.rpoMet ? "met" : "missed")}`,
    );
    for (const m of o.missing) out(`      missing: ${m}`);
  }
  if (br.target !== undefined) {
    const meets = br.worstCellShare <= br.target + 1e-12;
    out(
      `  blast radius: one cell failure reaches ${formatShare(br.worstCellShare)} of tenants vs objectives.blastRadius ${formatShare(br.target)} ${ok(meets, meets ? "met" : `missed: needs ≥ ${br.cellsForTarget[0]?.cells} cells`)}`,
    );
  }

  heading(6, "Business impact and the cost of redundancy");
  out(c.dim(`  ${pad("tier", 5)} ${pad("RTO", 8)} ${pad("RPO", 8)} ${pad("downtime/h", 12)} services`));
  for (const row of report.cost.tiers) {
    out(
      `  ${pad(String(row.tier), 5)} ${pad(formatDuration(row.rtoMs), 8)} ${pad(formatDuration(row.rpoMs), 8)} ${pad(row.downtimeCostPerHour === undefined ? "—" : money(row.downtimeCostPerHour), 12)} ${row.services.join(", ")}`,
    );
  }
  if (report.cost.redundancies.length > 0) {
    out(
      c.dim(
        `  ${pad("redundancy", 52)} ${pad("cost/yr", 11)} ${pad("avoids/yr", 11)} ${pad("downtime avoided", 17)} verdict`,
      ),
    );
    for (const r of report.cost.redundancies) {
      const verdict =
        r.worthIt === undefined
          ? c.dim("no cost data")
          : r.worthIt
            ? c.green("pays for itself")
            : c.yellow("costs more than it saves");
      out(
        `  ${pad(r.redundancy, 52)} ${pad(r.costPerYear === undefined ? "—" : money(r.costPerYear), 11)} ${pad(r.avoidedPerYear === undefined ? "—" : money(r.avoidedPerYear), 11)} ${pad(`${fmtMinutes(r.avoidedMinutesPerYear)}/yr`, 17)} ${verdict}`,
      );
    }
  }

  if (report.simulation) {
    const sim = report.simulation;
    heading(
      7,
      `Monte Carlo: ${sim.years} simulated year(s) of component failures (seed ${sim.seed}, ${sim.events.toLocaleString("en-US")} events)`,
    );
    out(
      c.dim(
        `  ${pad("scenario", 34)} ${pad("p50 year", 14)} ${pad("p99 year", 14)} ${pad("analytic", 14)} tenant-minutes lost/yr (mean, p99)`,
      ),
    );
    for (const s of sim.scenarios) {
      const analytic = report.availability.find((a) => a.service === s.service && a.scenario === s.scenario);
      out(
        `  ${pad(`${s.service}/${s.scenario}`, 34)} ${pad(formatAvailability(s.p50), 14)} ${pad(formatAvailability(s.p99), 14)} ${pad(analytic ? formatAvailability(analytic.availability) : "—", 14)} ${Math.round(s.tenantMinutesLostPerYear.mean).toLocaleString("en-US")}, ${Math.round(s.tenantMinutesLostPerYear.p99).toLocaleString("en-US")}`,
      );
    }
    out(c.dim("  p99 year: the availability reached in 99% of simulated years"));
  }

  out();
  const checks = Object.entries(report.checks)
    .map(([name, pass]) => `${name} ${pass ? c.green("✓") : c.red("✗")}`)
    .join("  ");
  out(`${c.bold("Checks:")} ${checks}`);
  return lines.join("\n");
}

function worstRegions(
  cases: readonly { regions: readonly { region: string; utilisation: number }[] }[],
  n: number,
): string[] {
  const worst = new Map<string, number>();
  for (const x of cases)
    for (const r of x.regions) worst.set(r.region, Math.max(worst.get(r.region) ?? 0, r.utilisation));
  return [...worst.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([r]) => r);
}

function fmtNines(a: number): string {
  const n = nines(a);
  return Number.isFinite(n) ? `${n.toFixed(2)} nines` : "∞ nines";
}

function fmtMinutes(m: number): string {
  if (m >= 60) return formatDuration(m * 60_000);
  if (m >= 1) return `${m.toFixed(1)} min`;
  return `${(m * 60).toFixed(m * 60 >= 1 ? 1 : 3)} s`;
}

function money(n: number): string {
  if (n >= 1e6) return `$${(n / 1e6).toFixed(1)}M`;
  if (n >= 1e4) return `$${Math.round(n / 1e3)}k`;
  return `$${Math.round(n).toLocaleString("en-US")}`;
}

function pad(s: string, n: number): string {
  return s.length >= n ? s : s + " ".repeat(n - s.length);
}
