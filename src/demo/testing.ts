/**
 * Helpers for the demo's tests: configurations pointing at a test cluster, a small HTTP client,
 * polling, a TCP forwarder standing in for a writer endpoint, and child-process plumbing.
 */
import type { ChildProcess } from "node:child_process";
import { connect, createServer, type Socket } from "node:net";
import type { TestInstance } from "../lib/postgres-testing.js";
import type { DirectoryConfig } from "./directory-config.js";

/** A 32-byte token key as hex, as RINGFENCE_TOKEN_SECRET takes it. */
export const SECRET_HEX = "5f".repeat(32);

/** `postgres://ringfence@127.0.0.1:PORT/DB` for a test instance. */
export function dbUrl(instance: Pick<TestInstance, "host" | "port">, database = "postgres"): string {
  return `postgres://ringfence@${instance.host}:${instance.port}/${database}`;
}

/** A directory configuration on a free port reading from `replica` and writing to `primary`. */
export function testDirectoryConfig(
  primary: Pick<TestInstance, "host" | "port">,
  replica: Pick<TestInstance, "host" | "port">,
  database = "postgres",
): DirectoryConfig {
  return Object.freeze({
    port: 0,
    host: "127.0.0.1",
    region: "eu-west",
    zone: "eu-west-a",
    cell: "cell-1",
    version: "test",
    databaseUrl: dbUrl(replica, database),
    databaseWriteUrl: dbUrl(primary, database),
    tokenSecret: Buffer.from(SECRET_HEX, "hex"),
  });
}

export interface Answer {
  readonly status: number;
  readonly headers: Headers;
  // biome-ignore lint/suspicious/noExplicitAny: tests read arbitrary JSON answers
  readonly json: any;
}

/** One HTTP request with an optional tenant and JSON body; the answer's JSON parsed. */
export async function call(
  base: string,
  method: string,
  path: string,
  options: { tenant?: string; body?: unknown; headers?: Record<string, string> } = {},
): Promise<Answer> {
  const headers: Record<string, string> = { ...options.headers };
  if (options.tenant !== undefined) headers["X-Tenant"] = options.tenant;
  let body: string | undefined;
  if (options.body !== undefined) {
    body = typeof options.body === "string" ? options.body : JSON.stringify(options.body);
    headers["Content-Type"] = "application/json";
  }
  const res = await fetch(`${base}${path}`, { method, headers, body });
  const text = await res.text();
  return { status: res.status, headers: res.headers, json: text === "" ? undefined : JSON.parse(text) };
}

/** Polls `probe` every 50 ms until it returns something other than undefined/false. */
export async function waitFor<T>(
  probe: () => Promise<T | undefined | false> | T | undefined | false,
  what: string,
  timeoutMs = 10_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A TCP forwarder on `listenPort` to `target`, like an agent's writer endpoint. */
export async function startForwarder(
  listenPort: number,
  target: { host: string; port: number },
): Promise<{ close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = connect(target.port, target.host);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on("close", () => sockets.delete(s));
      s.on("error", () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(listenPort, "127.0.0.1", () => resolve());
  });
  return {
    close: async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of sockets) s.destroy();
      await closed;
    },
  };
}

/** Collects a child's stdout as JSON lines (other lines are kept as text). */
export function jsonLines(child: ChildProcess): { events: Record<string, unknown>[]; text: string[] } {
  const out = { events: [] as Record<string, unknown>[], text: [] as string[] };
  let pending = "";
  child.stdout?.setEncoding("utf8");
  child.stdout?.on("data", (chunk: string) => {
    pending += chunk;
    let nl = pending.indexOf("\n");
    while (nl >= 0) {
      const line = pending.slice(0, nl);
      pending = pending.slice(nl + 1);
      try {
        out.events.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        out.text.push(line);
      }
      nl = pending.indexOf("\n");
    }
  });
  return out;
}

/** Resolves with the exit code (or signal name) of `child`, at once if it has already exited. */
export async function exited(child: ChildProcess): Promise<number | string> {
  if (child.exitCode !== null) return child.exitCode;
  if (child.signalCode !== null) return child.signalCode;
  return await new Promise((resolve) => child.once("exit", (code, signal) => resolve(code ?? signal ?? -1)));
}

/** Kills `child` with SIGKILL unless it has exited, and waits for it. */
export async function reap(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  child.kill("SIGKILL");
  await exited(child);
}
