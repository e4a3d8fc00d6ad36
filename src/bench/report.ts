/**
 * The router benchmark's report: each subject's raw figures as they are measured, then the ratios
 * against the targets with PASS or MISS.
 */
import type { LoadResult } from "./load.js";
import type { NodeProxyKind } from "./peers.js";

export type SubjectKey = "direct" | "ringfence" | "http-proxy" | "fastify" | "haproxy";

/** One load run and the CPU used while it ran. */
export interface Run {
  readonly result: LoadResult;
  /** CPU the proxy used, in cores (1.0 = one core busy all the time); undefined without a proxy. */
  readonly proxyCores: number | undefined;
  readonly originCores: number;
  /** How busy each core of the machine was (0..1), whoever kept it busy. */
  readonly coreBusy: number[];
}

export interface Figures {
  /** Connections of the throughput run. */
  readonly connections: number;
  /** Many connections: requests/s. */
  readonly throughput: Run;
  /** One connection: latency. */
  readonly latency: Run;
  /** Each round's figures (the runs above are the median rounds). */
  readonly rounds?: {
    readonly requestsPerSec: readonly number[];
    readonly p50Ms: readonly number[];
    /** p50 less the direct run's p50 of the same round. */
    readonly addedP50Ms?: readonly number[];
    readonly medianAddedP50Ms?: number;
  };
}

export const int = (n: number) => Math.round(n).toLocaleString("en-US");
export const us = (ms: number) => `${int(ms * 1000)} µs`;
const pct = (f: number) => `${Math.round(f * 100)}%`;

/** Share of the proxy's core (0..1) that something other than the proxy kept busy during a run. */
function foreignLoad(run: Run, proxyCore: number): number {
  return (run.coreBusy[proxyCore] ?? 0) - (run.proxyCores ?? 0);
}

/** Whether other processes disturbed any run of these figures (more than 10% of the proxy's core). */
export function disturbed(f: Figures, proxyCore: number): boolean {
  return foreignLoad(f.throughput, proxyCore) > 0.1 || foreignLoad(f.latency, proxyCore) > 0.1;
}

/** The CPU line of a run, with a warning when the proxy's core was busy with something else. */
function usage(run: Run, cores: { load: number; proxy: number }): string {
  const proxy = run.proxyCores ?? 0;
  const busy = run.coreBusy.map((b, i) => `core ${i} ${pct(b)}`).join(", ");
  let line = `      CPU: proxy ${run.proxyCores === undefined ? "-" : `${proxy.toFixed(2)} cores`}, origin ${run.originCores.toFixed(2)} cores; busy: ${busy}`;
  const foreign = foreignLoad(run, cores.proxy);
  if (foreign > 0.1) {
    line += `\n      !! other processes used ~${pct(foreign)} of core ${cores.proxy} during this run: figures disturbed`;
  }
  return line;
}

/**
 * One subject's figures. `direct` (the baseline, when measured) gives the added latency; `cores`
 * tells which core ran the origin and load generator and which the proxy.
 */
export function printFigures(
  label: string,
  f: Figures,
  direct: Figures | undefined,
  cores: { load: number; proxy: number },
): void {
  const t = f.throughput.result;
  const l = f.latency.result;
  const bad = (r: LoadResult) =>
    r.non2xx + r.errors > 0 ? ` (!! ${r.non2xx} non-2xx, ${r.errors} socket errors)` : "";
  console.log(`  ${label}`);
  console.log(
    `    ${f.connections} connections: ${int(t.requestsPerSec)} requests/s (${int(t.requests)} requests)` +
      `, latency p50 ${us(t.p50Ms)} p99 ${us(t.p99Ms)}${bad(t)}`,
  );
  console.log(usage(f.throughput, cores));
  const proxyCores = f.throughput.proxyCores;
  if (proxyCores !== undefined && proxyCores > 0) {
    console.log(`      ${int(t.requestsPerSec / proxyCores)} requests per CPU-second of the proxy`);
    const busy = f.throughput.coreBusy;
    if ((busy[cores.load] ?? 0) >= 0.95 && (busy[cores.proxy] ?? 0) < 0.9) {
      console.log(
        `      !! bound by core ${cores.load} (origin + load generator), not by the proxy: its requests/s is a floor`,
      );
    }
  }
  const dl = direct?.latency.result;
  const addedP50 = f.rounds?.medianAddedP50Ms ?? (dl ? l.p50Ms - dl.p50Ms : undefined);
  const added =
    dl && addedP50 !== undefined
      ? `; added over direct: p50 ${us(addedP50)}, p99 ${us(l.p99Ms - dl.p99Ms)}`
      : "";
  console.log(
    `    1 connection: ${int(l.requestsPerSec)} requests/s, latency p50 ${us(l.p50Ms)} p75 ${us(l.p75Ms)}` +
      ` p90 ${us(l.p90Ms)} p99 ${us(l.p99Ms)}${added}${bad(l)}`,
  );
  console.log(usage(f.latency, cores));
  if (f.rounds) {
    const list = (values: readonly number[], unit: (n: number) => string) => values.map(unit).join(", ");
    console.log(
      `    rounds: requests/s ${list(f.rounds.requestsPerSec, int)}; 1-connection p50 ${list(f.rounds.p50Ms, us)}` +
        (f.rounds.addedP50Ms ? `; added p50 ${list(f.rounds.addedP50Ms, us)}` : ""),
    );
  }
}

interface Ratio {
  readonly what: string;
  readonly value: number | undefined;
  readonly op: ">=" | "<=";
  readonly target: number;
  readonly note?: string;
}

function ratios(results: ReadonlyMap<SubjectKey, Figures>, routerLabel: string): Ratio[] {
  const rps = (k: SubjectKey) => results.get(k)?.throughput.result.requestsPerSec;
  const direct = results.get("direct");
  const added = (k: SubjectKey) => {
    const f = results.get(k);
    if (f?.rounds?.medianAddedP50Ms !== undefined) return f.rounds.medianAddedP50Ms;
    return f && direct ? f.latency.result.p50Ms - direct.latency.result.p50Ms : undefined;
  };
  const div = (a: number | undefined, b: number | undefined) =>
    a === undefined || b === undefined || b <= 0 ? undefined : a / b;
  const haproxyAdded = added("haproxy");
  return [
    {
      what: `${routerLabel} rps / node-http-proxy rps`,
      value: div(rps("ringfence"), rps("http-proxy")),
      op: ">=",
      target: 2.0,
    },
    {
      what: `${routerLabel} rps / @fastify/http-proxy rps`,
      value: div(rps("ringfence"), rps("fastify")),
      op: ">=",
      target: 2.0,
    },
    {
      what: `${routerLabel} rps / haproxy rps`,
      value: div(rps("ringfence"), rps("haproxy")),
      op: ">=",
      target: 0.45,
    },
    {
      what: `${routerLabel} added p50 / haproxy added p50`,
      value: div(added("ringfence"), haproxyAdded),
      op: "<=",
      target: 1.3,
      ...(haproxyAdded !== undefined && haproxyAdded <= 0
        ? { note: "haproxy added no measurable latency" }
        : {}),
    },
  ];
}

/** The ratios against the targets, PASS or MISS, and the figures that have no target. */
export function printRatios(
  results: ReadonlyMap<SubjectKey, Figures>,
  routerKind: NodeProxyKind,
  routerLabel: string,
): void {
  console.log(
    `\nratios (same run, medians over rounds${routerKind === "stand-in" ? "; STAND-IN, not ringfence" : ""}):`,
  );
  for (const r of ratios(results, routerLabel)) {
    const verdict =
      r.value === undefined
        ? "n/a"
        : (r.op === ">=" ? r.value >= r.target : r.value <= r.target)
          ? "PASS"
          : "MISS";
    const value = r.value === undefined ? (r.note ?? "not measured") : `${r.value.toFixed(2)}`;
    console.log(`  ${r.what}: ${value} (target ${r.op} ${r.target}) ${verdict}`);
  }
  const rf = results.get("ringfence");
  const ha = results.get("haproxy");
  const direct = results.get("direct");
  const perCpu = (f: Figures) =>
    f.throughput.proxyCores ? f.throughput.result.requestsPerSec / f.throughput.proxyCores : 0;
  if (rf && ha && perCpu(ha) > 0) {
    console.log(
      `  requests per proxy CPU-second, ${routerLabel} / haproxy: ${(perCpu(rf) / perCpu(ha)).toFixed(2)}` +
        " (no target; fairer than requests/s when haproxy is bound by the load side)",
    );
  }
  if (rf && ha && direct) {
    const p99 = (f: Figures) => f.latency.result.p99Ms - direct.latency.result.p99Ms;
    console.log(
      `  added p99: ${routerLabel} ${us(p99(rf))}, haproxy ${us(p99(ha))}` +
        (p99(ha) > 0 ? ` (ratio ${(p99(rf) / p99(ha)).toFixed(2)}, no target)` : ""),
    );
  }
}
