/**
 * The load generator of the router benchmark: wrk when it is installed, autocannon otherwise, run
 * as a child process pinned to a core, its report parsed into requests/s and latency percentiles.
 */
import { spawnSync } from "node:child_process";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { collectStderr, spawnChild, stopChild } from "./processes.js";

export type LoadTool = "wrk" | "autocannon";

export interface LoadRun {
  readonly url: string;
  readonly connections: number;
  readonly seconds: number;
  /** The core to pin the load generator to. */
  readonly core: number;
  readonly headers: Readonly<Record<string, string>>;
}

export interface LoadResult {
  readonly requestsPerSec: number;
  readonly requests: number;
  /** Latency percentiles in milliseconds. */
  readonly p50Ms: number;
  readonly p75Ms: number;
  readonly p90Ms: number;
  readonly p99Ms: number;
  /** Responses that were not 2xx or 3xx. */
  readonly non2xx: number;
  /** Connect, read, write errors and timeouts. */
  readonly errors: number;
}

/** The installed load generator: wrk preferred. */
export function loadTool(): LoadTool {
  return spawnSync("wrk", ["--version"]).error === undefined ? "wrk" : "autocannon";
}

const UNIT_MS: Record<string, number> = { us: 0.001, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Parses the report of `wrk --latency`. */
export function parseWrk(text: string): LoadResult {
  const number = (re: RegExp, what: string): number => {
    const m = re.exec(text);
    if (!m) throw new Error(`wrk report has no ${what}:\n${text}`);
    return Number(m[1]);
  };
  const percentile = (p: number): number => {
    const m = new RegExp(`^\\s*${p}(?:\\.0+)?%\\s+([\\d.]+)(us|ms|s|m|h)\\s*$`, "m").exec(text);
    if (!m) throw new Error(`wrk report has no ${p}% latency (was --latency given?):\n${text}`);
    return Number(m[1]) * (UNIT_MS[m[2] as string] ?? Number.NaN);
  };
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(text);
  const errors = socket ? socket.slice(1).reduce((sum, n) => sum + Number(n), 0) : 0;
  return {
    requestsPerSec: number(/Requests\/sec:\s+([\d.]+)/, "Requests/sec"),
    requests: number(/(\d+) requests in /, "request count"),
    p50Ms: percentile(50),
    p75Ms: percentile(75),
    p90Ms: percentile(90),
    p99Ms: percentile(99),
    non2xx: Number(/Non-2xx or 3xx responses: (\d+)/.exec(text)?.[1] ?? 0),
    errors,
  };
}

/** Parses the JSON report of `autocannon --json`. */
export function parseAutocannon(text: string): LoadResult {
  const line = text
    .trim()
    .split("\n")
    .reverse()
    .find((l) => l.startsWith("{"));
  if (!line) throw new Error(`autocannon printed no JSON report:\n${text}`);
  const r = JSON.parse(line) as {
    latency: { p50: number; p75: number; p90: number; p99: number };
    requests: { average: number; total: number };
    non2xx: number;
    errors: number;
    timeouts: number;
  };
  return {
    requestsPerSec: r.requests.average,
    requests: r.requests.total,
    p50Ms: r.latency.p50,
    p75Ms: r.latency.p75,
    p90Ms: r.latency.p90,
    p99Ms: r.latency.p99,
    non2xx: r.non2xx,
    errors: r.errors + r.timeouts,
  };
}

function argvFor(tool: LoadTool, run: LoadRun): string[] {
  if (tool === "wrk") {
    const headers = Object.entries(run.headers).flatMap(([k, v]) => ["-H", `${k}: ${v}`]);
    return ["wrk", "-t1", `-c${run.connections}`, `-d${run.seconds}s`, "--latency", ...headers, run.url];
  }
  const require = createRequire(import.meta.url);
  const bin = join(dirname(require.resolve("autocannon/package.json")), "autocannon.js");
  const headers = Object.entries(run.headers).flatMap(([k, v]) => ["-H", `${k}=${v}`]);
  return [
    process.execPath,
    bin,
    "-c",
    String(run.connections),
    "-d",
    String(run.seconds),
    "-j",
    ...headers,
    run.url,
  ];
}

/** Runs the load generator once; fails when it does not finish within its duration plus 30 s. */
export async function runLoad(tool: LoadTool, run: LoadRun): Promise<LoadResult> {
  const child = spawnChild(argvFor(tool, run), { core: run.core, stdout: true });
  const stderr = collectStderr(child);
  let stdout = "";
  child.stdout?.setEncoding("utf8");
  child.stdout?.on("data", (chunk: string) => {
    stdout += chunk;
  });
  // "close", not "exit": it comes after the last of stdout.
  const exited = new Promise<number | null>((resolve) => child.once("close", (code) => resolve(code)));
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), (run.seconds + 30) * 1000);
  });
  const code = await Promise.race([exited, limit]);
  clearTimeout(timer);
  if (code === "timeout") {
    await stopChild(child);
    throw new Error(`${tool} did not finish within ${run.seconds + 30} s`);
  }
  if (code !== 0) throw new Error(`${tool} exited with ${code}: ${stderr()}\n${stdout}`);
  return tool === "wrk" ? parseWrk(stdout) : parseAutocannon(stdout);
}
