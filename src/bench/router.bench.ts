/**
 * `npm run bench:router [-- --quick] [-- --stand-in]`: ringfence's router against other proxies,
 * on the same origin and the same machine, in the same run.
 *
 * - The origin (origin.js: `GET /users/x`, 98-byte JSON, keep-alive) and the load generator (wrk,
 *   or autocannon when wrk is missing) run pinned to core 0; each proxy runs alone, pinned to
 *   core 1: ringfence's router (`startStandaloneRouter`, every feature on), node-http-proxy,
 *   @fastify/http-proxy and HAProxy (`nbthread 1`). A direct run against the origin is the
 *   baseline for the latency a proxy adds.
 * - Every proxy runs at once (idle ones cost nothing) and the runs are interleaved: a 2 s warm-up
 *   each, then 5 rounds in which every subject in turn gets 50 connections for 4 s (requests/s),
 *   then 5 rounds of 1 connection for 4 s each (latency percentiles); the order of the subjects
 *   turns each round. A subject's figure is the median of its rounds, and the added latency is
 *   taken against the direct run of the same round, so a machine that drifts during the run (a
 *   shared VM does) moves every subject alike. `--quick`: 1 s warm-up, 2 rounds of 2 s.
 * - Ratios against the targets: requests/s against node-http-proxy (≥ 2.0), @fastify/http-proxy
 *   (≥ 2.0) and HAProxy (≥ 0.45); added p50 latency against HAProxy's (≤ 1.3).
 * - Memory: the router's resident set (VmRSS) idle, and with 10,000 idle keep-alive connections.
 *
 * Until dist/router/standalone.js is built, or with `--stand-in`, a stand-in proxy with the same
 * signature (stand-in-router.ts) takes the router's place and every figure says so.
 */
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { cpus } from "node:os";
import { join } from "node:path";
import { openIdleConnections } from "./idle-connections.js";
import { type LoadResult, type LoadTool, loadTool, runLoad } from "./load.js";
import {
  fetchOnce,
  type NodeProxyKind,
  type Running,
  startHaproxy,
  startNodeProxy,
  startOrigin,
} from "./peers.js";
import {
  coreTimes,
  cpuSeconds,
  fileLimits,
  HAS_TASKSET,
  installCleanup,
  raiseOwnFileLimit,
  residentKiB,
} from "./processes.js";
import {
  disturbed,
  type Figures,
  int,
  printFigures,
  printRatios,
  type Run,
  type SubjectKey,
} from "./report.js";
import { ensureDebianTools } from "./tools.js";

const PATH = "/users/x";
const HEADERS = { "X-Tenant": "bench" } as const;
const LOAD_CORE = 0;
const PROXY_CORE = 1;
const THROUGHPUT_CONNECTIONS = 50;
const IDLE_CONNECTIONS = 10_000;
const ROUTER_NOFILE = 30_000;

interface Subject {
  readonly key: SubjectKey;
  readonly label: string;
  /** Starts the proxy in front of the origin; undefined for the direct run. */
  readonly start?: (originUrl: string) => Promise<Running>;
  /** Why it is left out, when it is. */
  readonly skip?: string;
}

interface Settings {
  readonly quick: boolean;
  readonly standIn: boolean;
  readonly warmSeconds: number;
  readonly runSeconds: number;
  readonly rounds: number;
}

function settings(argv: readonly string[]): Settings {
  for (const arg of argv) {
    if (arg !== "--quick" && arg !== "--stand-in") {
      throw new Error(`unknown option '${arg}': use --quick (3 s runs) or --stand-in (stand-in router)`);
    }
  }
  const quick = argv.includes("--quick");
  return {
    quick,
    standIn: argv.includes("--stand-in"),
    warmSeconds: quick ? 1 : 2,
    runSeconds: quick ? 2 : 4,
    rounds: quick ? 2 : 5,
  };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function describeMachine(tool: LoadTool, haproxy: boolean): void {
  const version = (argv: string[]) => {
    const r = spawnSync(argv[0] as string, argv.slice(1), { encoding: "utf8" });
    return `${r.stdout}${r.stderr}`.trim().split("\n")[0] ?? "?";
  };
  console.log(`machine: ${cpus().length} cores (${cpus()[0]?.model ?? "?"}), Node ${process.version}`);
  console.log(
    `  load average at start: ${readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ")}`,
  );
  console.log(
    HAS_TASKSET
      ? `  pinning: taskset works; origin and ${tool} on core ${LOAD_CORE}, each proxy on core ${PROXY_CORE}`
      : "  pinning: taskset not available, processes are NOT pinned (figures are less comparable)",
  );
  const generator =
    tool === "wrk"
      ? version(["wrk", "--version"])
      : "autocannon (wrk missing): it records latency in whole milliseconds, too coarse for added latency";
  console.log(`  load generator: ${generator}`);
  console.log(`  haproxy: ${haproxy ? version(["haproxy", "-v"]) : "not installed: skipped"}`);
}

async function checkAnswer(label: string, url: string, expected: string): Promise<void> {
  const r = await fetchOnce(`${url}${PATH}`, HEADERS);
  if (r.status !== 200 || r.body !== expected) {
    throw new Error(
      `${label} answered ${r.status} '${r.body.slice(0, 200)}' to GET ${PATH}; expected the origin's body`,
    );
  }
}

/** Runs `load` and measures the CPU the proxy, the origin and each core used meanwhile. */
async function withUsage(
  proxyPid: number | undefined,
  originPid: number,
  load: () => Promise<LoadResult>,
): Promise<Run> {
  const proxyBefore = proxyPid === undefined ? 0 : cpuSeconds(proxyPid);
  const originBefore = cpuSeconds(originPid);
  const coresBefore = coreTimes();
  const start = performance.now();
  const result = await load();
  const wall = (performance.now() - start) / 1000;
  const coresAfter = coreTimes();
  return {
    result,
    proxyCores: proxyPid === undefined ? undefined : (cpuSeconds(proxyPid) - proxyBefore) / wall,
    originCores: (cpuSeconds(originPid) - originBefore) / wall,
    coreBusy: coresAfter.map((after, i) => {
      const before = coresBefore[i] ?? { busy: 0, total: 0 };
      return (after.busy - before.busy) / Math.max(1, after.total - before.total);
    }),
  };
}

/** A started subject: where to send load, and the process whose CPU counts as the proxy's. */
interface Started {
  readonly subject: Subject;
  readonly url: string;
  readonly proxy: Running | undefined;
  readonly throughput: Run[];
  readonly latency: Run[];
}

/** The run with the median of `value` (the lower middle one for an even count). */
function medianRun(runs: readonly Run[], value: (r: Run) => number): Run {
  const sorted = [...runs].sort((a, b) => value(a) - value(b));
  return sorted[Math.floor((sorted.length - 1) / 2)] as Run;
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

/** Every subject in turn, the order turned by `round` so that none always goes first. */
function turn<T>(items: readonly T[], round: number): T[] {
  const k = round % items.length;
  return [...items.slice(k), ...items.slice(0, k)];
}

/**
 * Warms every subject up, then interleaves their runs in rounds (throughput rounds, then latency
 * rounds), and sums each subject's runs up as its figures: the median round, and the added p50
 * latency as the median over rounds of its p50 less the direct run's p50 in the same round.
 */
async function measureAll(
  started: readonly Started[],
  tool: LoadTool,
  s: Settings,
  origin: Running,
): Promise<Map<SubjectKey, Figures>> {
  const load = (st: Started) => ({ url: `${st.url}${PATH}`, core: LOAD_CORE, headers: HEADERS });
  for (const st of started) {
    await runLoad(tool, { ...load(st), connections: THROUGHPUT_CONNECTIONS, seconds: s.warmSeconds });
  }
  for (let round = 0; round < s.rounds; round++) {
    for (const st of turn(started, round)) {
      st.throughput.push(
        await withUsage(st.proxy?.pid, origin.pid, () =>
          runLoad(tool, { ...load(st), connections: THROUGHPUT_CONNECTIONS, seconds: s.runSeconds }),
        ),
      );
    }
    console.log(`  throughput round ${round + 1} of ${s.rounds} done`);
  }
  for (let round = 0; round < s.rounds; round++) {
    for (const st of turn(started, round)) {
      st.latency.push(
        await withUsage(st.proxy?.pid, origin.pid, () =>
          runLoad(tool, { ...load(st), connections: 1, seconds: s.runSeconds }),
        ),
      );
    }
    console.log(`  latency round ${round + 1} of ${s.rounds} done`);
  }
  const direct = started.find((st) => st.subject.key === "direct");
  const results = new Map<SubjectKey, Figures>();
  for (const st of started) {
    const added = direct
      ? st.latency.map((run, i) => run.result.p50Ms - (direct.latency[i]?.result.p50Ms ?? 0))
      : undefined;
    results.set(st.subject.key, {
      connections: THROUGHPUT_CONNECTIONS,
      throughput: medianRun(st.throughput, (r) => r.result.requestsPerSec),
      latency: medianRun(st.latency, (r) => r.result.p50Ms),
      rounds: {
        requestsPerSec: st.throughput.map((r) => r.result.requestsPerSec),
        p50Ms: st.latency.map((r) => r.result.p50Ms),
        ...(added ? { addedP50Ms: added, medianAddedP50Ms: median(added) } : {}),
      },
    });
  }
  return results;
}

async function measureMemory(kind: NodeProxyKind, label: string, originUrl: string): Promise<void> {
  console.log(`\nmemory of the ${label}: VmRSS of its process, pinned to core ${PROXY_CORE}`);
  const own = raiseOwnFileLimit(IDLE_CONNECTIONS + 1_000);
  const router = await startNodeProxy(kind, originUrl, PROXY_CORE, ROUTER_NOFILE);
  try {
    const routerLimit = fileLimits(router.pid).soft;
    const count = Math.min(IDLE_CONNECTIONS, own - 1_000, routerLimit - 1_000);
    console.log(`  open-file limits: this process ${int(own)}, the router ${int(routerLimit)}`);
    if (count < IDLE_CONNECTIONS) {
      console.log(`  !! too few open files: ${int(count)} connections instead of ${int(IDLE_CONNECTIONS)}`);
    }
    await fetchOnce(`${router.url}${PATH}`, HEADERS);
    await sleep(1_000);
    const idle = residentKiB(router.pid);
    const start = performance.now();
    const connections = await openIdleConnections(router.url, PATH, HEADERS, count);
    const openSeconds = (performance.now() - start) / 1000;
    try {
      await sleep(1_000);
      const loaded = residentKiB(router.pid);
      const open = connections.open();
      console.log(`  idle (after one request): ${int(idle / 1024)} MiB (${int(idle)} KiB)`);
      console.log(
        `  with ${int(open)} idle keep-alive connections (${int(connections.opened)} opened with one request each` +
          ` in ${openSeconds.toFixed(1)} s, ${int(connections.opened - open)} since closed by the router):` +
          ` ${int(loaded / 1024)} MiB (${int(loaded)} KiB)`,
      );
      if (open > 0) console.log(`  per connection: ${((loaded - idle) / open).toFixed(1)} KiB`);
    } finally {
      connections.close();
    }
  } finally {
    await router.stop();
  }
}

/** What the benchmark measures, in order: the direct baseline first. */
function subjectsFor(routerKind: NodeProxyKind, routerLabel: string, hasHaproxy: boolean): Subject[] {
  return [
    { key: "direct", label: "direct to the origin (baseline)" },
    {
      key: "ringfence",
      label: routerLabel,
      start: (o) => startNodeProxy(routerKind, o, PROXY_CORE, ROUTER_NOFILE),
    },
    {
      key: "http-proxy",
      label: "node-http-proxy (keep-alive agent)",
      start: (o) => startNodeProxy("http-proxy", o, PROXY_CORE),
    },
    {
      key: "fastify",
      label: "@fastify/http-proxy (logger off)",
      start: (o) => startNodeProxy("fastify", o, PROXY_CORE),
    },
    {
      key: "haproxy",
      label: "HAProxy (nbthread 1, http-reuse always)",
      start: (o) => startHaproxy(o, PROXY_CORE),
      ...(hasHaproxy ? {} : { skip: "haproxy is not installed and could not be installed" }),
    },
  ];
}

async function main(): Promise<void> {
  const s = settings(process.argv.slice(2));
  installCleanup();
  console.log(`ringfence bench:router${s.quick ? " (--quick: 3 s runs)" : ""}`);
  const tools = ensureDebianTools([
    { command: "wrk", pkg: "wrk", versionFlag: "--version" },
    { command: "haproxy", pkg: "haproxy", versionFlag: "-v" },
  ]);
  const tool = loadTool();
  describeMachine(tool, tools.has("haproxy"));
  if (HAS_TASKSET)
    spawnSync("taskset", ["-a", "-c", "-p", String(LOAD_CORE), String(process.pid)], { stdio: "ignore" });

  const realRouter = existsSync(join(import.meta.dirname, "..", "router", "standalone.js"));
  const routerKind: NodeProxyKind = realRouter && !s.standIn ? "ringfence" : "stand-in";
  const routerLabel = routerKind === "ringfence" ? "ringfence router" : "STAND-IN router (not ringfence)";
  if (routerKind === "stand-in") {
    console.log(
      realRouter
        ? "\n!! --stand-in: the router's place is taken by src/bench/stand-in-router.ts; no figure below is ringfence's"
        : "\n!! dist/router/standalone.js is not built: the router's place is taken by src/bench/stand-in-router.ts;" +
            " no figure below is ringfence's",
    );
  }

  const subjects = subjectsFor(routerKind, routerLabel, tools.has("haproxy"));

  const origin = await startOrigin(LOAD_CORE);
  const results = new Map<SubjectKey, Figures>();
  const failed: string[] = [];
  try {
    const expected = (await fetchOnce(`${origin.url}${PATH}`, HEADERS)).body;
    console.log(
      `\norigin ${origin.url}${PATH}: ${Buffer.byteLength(expected)}-byte JSON body` +
        `\nload: ${tool}; every subject started at once; warm-up ${s.warmSeconds} s each, then ${s.rounds} rounds of` +
        ` ${THROUGHPUT_CONNECTIONS} connections × ${s.runSeconds} s and ${s.rounds} rounds of 1 connection × ${s.runSeconds} s,` +
        " subjects interleaved; figures are medians over rounds\n",
    );
    const started: Started[] = [];
    try {
      for (const subject of subjects) {
        if (subject.skip) {
          console.log(`  ${subject.label}: SKIPPED (${subject.skip})`);
          continue;
        }
        try {
          const proxy = subject.start ? await subject.start(origin.url) : undefined;
          const url = proxy?.url ?? origin.url;
          started.push({ subject, url, proxy, throughput: [], latency: [] });
          await checkAnswer(subject.label, url, expected);
        } catch (error) {
          await started.pop()?.proxy?.stop();
          failed.push(subject.label);
          console.log(
            `  ${subject.label}: FAILED: ${error instanceof Error ? error.message : String(error)}`,
          );
        }
      }
      for (const [key, figures] of await measureAll(started, tool, s, origin)) results.set(key, figures);
    } finally {
      for (const st of started) await st.proxy?.stop();
    }
    console.log("");
    for (const st of started) {
      const figures = results.get(st.subject.key);
      if (figures)
        printFigures(st.subject.label, figures, results.get("direct"), {
          load: LOAD_CORE,
          proxy: PROXY_CORE,
        });
    }
    if (results.has("ringfence")) await measureMemory(routerKind, routerLabel, origin.url);
    else console.log(`\nmemory of the ${routerLabel}: not measured, it did not run`);
  } finally {
    await origin.stop();
  }

  printRatios(results, routerKind, routerLabel);
  const noisy = [...results].filter(([, f]) => disturbed(f, PROXY_CORE)).map(([key]) => key);
  if (noisy.length > 0) {
    console.log(
      `\n!! other processes used core ${PROXY_CORE} during: ${noisy.join(", ")}; rerun on a quiet machine`,
    );
  }
  if (failed.length > 0) {
    console.log(`\n!! did not run: ${failed.join("; ")}`);
    process.exitCode = 1;
  }
}

try {
  await main();
} catch (error) {
  console.error(error instanceof Error ? (error.stack ?? error.message) : String(error));
  process.exitCode = 1;
}
process.exit();
