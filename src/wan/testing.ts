/**
 * Test helpers for the WAN emulator: loopback servers and clients that are always cleaned up through
 * the test's `after` hook, even when the test fails.
 */
import net, { type AddressInfo, type Server, type Socket } from "node:net";
import { performance } from "node:perf_hooks";
import type { TestContext } from "node:test";

/** A loopback server whose sockets are tracked so cleanup can destroy them. */
export interface TestServer {
  server: Server;
  port: number;
  /** Sockets accepted so far (open or not). */
  sockets: Socket[];
  /** Resolves with the next accepted socket (or one already accepted and not yet taken). */
  nextSocket(): Promise<Socket>;
}

/** Starts a server on 127.0.0.1 and a free port; `onSocket` runs for each connection. */
export async function startServer(
  t: TestContext,
  onSocket: (socket: Socket) => void = () => {},
  options: net.ServerOpts = {},
): Promise<TestServer> {
  const sockets: Socket[] = [];
  const untaken: Socket[] = [];
  const waiting: ((socket: Socket) => void)[] = [];
  const server = net.createServer(options, (socket) => {
    socket.on("error", () => {});
    sockets.push(socket);
    onSocket(socket);
    const waiter = waiting.shift();
    if (waiter === undefined) untaken.push(socket);
    else waiter(socket);
  });
  t.after(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen({ host: "127.0.0.1", port: 0 }, () => resolve());
  });
  const nextSocket = (): Promise<Socket> => {
    const ready = untaken.shift();
    if (ready !== undefined) return Promise.resolve(ready);
    return new Promise((resolve) => waiting.push(resolve));
  };
  return { server, port: (server.address() as AddressInfo).port, sockets, nextSocket };
}

/** A server that echoes every byte back and ends when the client ends. */
export function startEchoServer(t: TestContext): Promise<TestServer> {
  return startServer(t, (socket) => socket.pipe(socket));
}

/** Connects to 127.0.0.1:`port`; the socket is destroyed after the test. */
export async function connect(t: TestContext, port: number): Promise<Socket> {
  const socket = net.connect({ host: "127.0.0.1", port });
  socket.setNoDelay(true);
  t.after(() => {
    socket.destroy();
  });
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("error", reject);
  });
  socket.on("error", () => {});
  return socket;
}

/** Reads until `bytes` bytes have arrived (or the stream ends/closes first) and returns them. */
export function readBytes(socket: Socket, bytes: number, timeoutMs = 10_000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let length = 0;
    const done = (err?: Error): void => {
      clearTimeout(timer);
      socket.off("data", onData);
      socket.off("end", onEnd);
      socket.off("close", onEnd);
      if (err) reject(err);
      else resolve(Buffer.concat(chunks));
    };
    const onData = (chunk: Buffer): void => {
      chunks.push(chunk);
      length += chunk.length;
      if (length >= bytes) done();
    };
    const onEnd = (): void => done();
    const timer = setTimeout(
      () => done(new Error(`timed out after ${timeoutMs} ms with ${length}/${bytes} bytes`)),
      timeoutMs,
    );
    socket.on("data", onData);
    socket.once("end", onEnd);
    socket.once("close", onEnd);
  });
}

/** Reads everything until the peer ends the stream. */
export function readToEnd(socket: Socket, timeoutMs = 10_000): Promise<Buffer> {
  return readBytes(socket, Number.POSITIVE_INFINITY, timeoutMs);
}

/** Resolves true if the socket closes within `ms`, false otherwise. */
export function closesWithin(socket: Socket, ms: number): Promise<boolean> {
  if (socket.closed) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      socket.off("close", onClose);
      resolve(false);
    }, ms);
    const onClose = (): void => {
      clearTimeout(timer);
      resolve(true);
    };
    socket.once("close", onClose);
  });
}

/** Writes `message` and measures the milliseconds until `reply.length` bytes come back. */
export async function roundTrip(socket: Socket, message: string): Promise<number> {
  const started = performance.now();
  const reading = readBytes(socket, Buffer.byteLength(message));
  socket.write(message);
  const reply = await reading;
  if (reply.toString() !== message) throw new Error(`expected echo "${message}", got "${reply.toString()}"`);
  return performance.now() - started;
}

/** Polls `condition` every 5 ms until it holds; rejects after `timeoutMs`. */
export async function waitFor(
  condition: () => boolean,
  timeoutMs = 5_000,
  what = "condition",
): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(5);
  }
}

/** Waits `ms` milliseconds (only for observing that nothing happens, never to assert speed). */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A port on 127.0.0.1 that nothing listens on right now (bound once, then released). */
export async function unusedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen({ host: "127.0.0.1", port: 0 }, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
