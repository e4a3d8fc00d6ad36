/**
 * Starting and stopping what the router benchmark measures: the origin, the Node proxies (through
 * proxy-runner.js) and HAProxy, each a process of its own pinned to a core.
 */
import type { ChildProcess } from "node:child_process";
import { writeFileSync } from "node:fs";
import { get } from "node:http";
import { connect } from "node:net";
import { join } from "node:path";
import { freePort } from "../lib/ports.js";
import {
  collectStderr,
  makeTempDir,
  removeTempDir,
  spawnChild,
  stopChild,
  waitForLine,
} from "./processes.js";

const HERE = import.meta.dirname;

/** A running process that serves HTTP. */
export interface Running {
  readonly url: string;
  /** The process to measure (CPU, memory): the proxy itself, or the process its runner reports. */
  readonly pid: number;
  stop(): Promise<void>;
}

/** The origin, `node dist/bench/origin.js`, pinned to `core`. */
export async function startOrigin(core: number): Promise<Running> {
  const child = spawnChild([process.execPath, join(HERE, "origin.js")], { core, stdout: true });
  const stderr = collectStderr(child);
  const [, url] = await waitForLine(child, /^ORIGIN (\S+)$/, "origin", stderr);
  return { url: url as string, pid: child.pid as number, stop: () => stopChild(child) };
}

export type NodeProxyKind = "ringfence" | "stand-in" | "http-proxy" | "fastify";

/** A Node proxy through proxy-runner.js, pinned to `core`, with room for `nofile` open files. */
export async function startNodeProxy(
  kind: NodeProxyKind,
  originUrl: string,
  core: number,
  nofile?: number,
): Promise<Running> {
  const argv = [process.execPath, join(HERE, "proxy-runner.js"), kind, originUrl];
  const child = spawnChild(argv, { core, stdout: true, ...(nofile === undefined ? {} : { nofile }) });
  const stderr = collectStderr(child);
  const [, url, pid] = await waitForLine(child, /^READY (\S+) (\d+)$/, kind, stderr);
  return { url: url as string, pid: Number(pid), stop: () => stopChild(child) };
}

async function waitForPort(
  port: number,
  child: ChildProcess,
  what: string,
  stderr: () => string,
): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`${what} exited (${child.exitCode}): ${stderr()}`);
    const open = await new Promise<boolean>((resolve) => {
      const socket = connect(port, "127.0.0.1");
      socket.once("connect", () => {
        socket.destroy();
        resolve(true);
      });
      socket.once("error", () => resolve(false));
    });
    if (open) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`${what} did not listen on port ${port} within 10 s: ${stderr()}`);
}

/** The HAProxy configuration of the benchmark: one thread, HTTP mode, pooled keep-alive to the origin. */
export function haproxyConfig(port: number, origin: URL): string {
  return `global
  nbthread 1
  maxconn 4096

defaults
  mode http
  option http-keep-alive
  http-reuse always
  timeout connect 5s
  timeout client 120s
  timeout server 120s
  timeout http-keep-alive 120s

frontend bench
  bind 127.0.0.1:${port}
  default_backend origin

backend origin
  server origin1 ${origin.hostname}:${origin.port}
`;
}

/** HAProxy (`haproxy -db -f <generated config>`), pinned to `core`. */
export async function startHaproxy(originUrl: string, core: number): Promise<Running> {
  const dir = makeTempDir("ringfence-bench-haproxy-");
  const config = join(dir, "haproxy.cfg");
  const port = await freePort();
  writeFileSync(config, haproxyConfig(port, new URL(originUrl)));
  const child = spawnChild(["haproxy", "-db", "-f", config], { core });
  const stderr = collectStderr(child);
  const stop = async () => {
    await stopChild(child);
    removeTempDir(dir);
  };
  try {
    await waitForPort(port, child, "haproxy", stderr);
  } catch (error) {
    await stop();
    throw error;
  }
  return { url: `http://127.0.0.1:${port}`, pid: child.pid as number, stop };
}

/** One `GET` on a connection of its own: status and body. */
export async function fetchOnce(
  url: string,
  headers: Readonly<Record<string, string>>,
): Promise<{ status: number; body: string }> {
  return await new Promise((resolve, reject) => {
    const req = get(url, { headers, agent: false, timeout: 5_000 }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => {
        body += chunk;
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("timeout", () => req.destroy(new Error(`GET ${url} timed out after 5 s`)));
    req.on("error", reject);
  });
}
