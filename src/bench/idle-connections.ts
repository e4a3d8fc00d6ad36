/**
 * Many idle keep-alive client connections to one server, for the router benchmark's memory figure:
 * opened in batches, one request each, then left open and silent.
 */
import { connect, type Socket } from "node:net";

export interface IdleConnections {
  /** Connections opened (each answered its one request). */
  readonly opened: number;
  /** How many are still open now (the server may close idle ones). */
  open(): number;
  close(): void;
}

function openOne(url: URL, request: string, timeoutMs: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(Number(url.port), url.hostname);
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no response on a new connection to ${url.host} within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.once("connect", () => socket.write(request));
    socket.once("data", (chunk: Buffer) => {
      clearTimeout(timer);
      if (!chunk.toString("latin1").startsWith("HTTP/1.1 200")) {
        socket.destroy();
        reject(new Error(`unexpected answer: ${chunk.toString("latin1").split("\r\n")[0]}`));
        return;
      }
      socket.on("data", () => {}); // nothing more is expected; keep reading so the socket stays healthy
      resolve(socket);
    });
    socket.once("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
}

/**
 * Opens `count` connections to `url`, `batch` at a time, each sending `GET <path>` with `headers`
 * and reading the answer; the connections then stay open and idle until `close()`.
 */
export async function openIdleConnections(
  url: string,
  path: string,
  headers: Readonly<Record<string, string>>,
  count: number,
  batch = 250,
): Promise<IdleConnections> {
  const target = new URL(url);
  const head = Object.entries(headers)
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join("");
  const request = `GET ${path} HTTP/1.1\r\nHost: ${target.host}\r\n${head}\r\n`;
  const sockets: Socket[] = [];
  let closed = 0;
  try {
    for (let done = 0; done < count; done += batch) {
      const size = Math.min(batch, count - done);
      const settled = await Promise.allSettled(
        Array.from({ length: size }, () => openOne(target, request, 15_000)),
      );
      for (const result of settled) {
        if (result.status === "rejected") continue;
        result.value.once("close", () => closed++);
        sockets.push(result.value);
      }
      const failed = settled.find((r) => r.status === "rejected");
      if (failed) throw failed.reason;
    }
  } catch (error) {
    for (const socket of sockets) socket.destroy();
    throw error;
  }
  return {
    opened: sockets.length,
    open: () => sockets.length - closed,
    close() {
      for (const socket of sockets) socket.destroy();
    },
  };
}
