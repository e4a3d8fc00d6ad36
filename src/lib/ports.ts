/**
 * Free TCP ports on loopback, for tests and for a local world's address plan.
 */
import { connect, createServer } from "node:net";

/** A port that was free on `host` a moment ago (bind to 0, read it, close). */
export async function freePort(host = "127.0.0.1"): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once("error", reject);
    server.listen(0, host, () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** Whether something accepts TCP connections on `host:port` (a connect, then at once a close). */
export async function accepts(host: string, port: number, timeoutMs = 1_000): Promise<boolean> {
  return await new Promise((resolve) => {
    const socket = connect({ host, port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
  });
}

/**
 * Waits until `host:port` accepts connections, asking every `everyMs`; false when `timeoutMs`
 * passed first or `signal` aborted.
 */
export async function waitUntilAccepting(
  host: string,
  port: number,
  options: { readonly timeoutMs: number; readonly everyMs?: number; readonly signal?: AbortSignal },
): Promise<boolean> {
  const deadline = performance.now() + options.timeoutMs;
  for (;;) {
    if (options.signal?.aborted) return false;
    if (await accepts(host, port)) return true;
    if (performance.now() >= deadline) return false;
    await new Promise((r) => setTimeout(r, options.everyMs ?? 100));
  }
}
