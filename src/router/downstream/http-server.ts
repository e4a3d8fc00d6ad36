/**
 * The router's client side: an HTTP/1.1 server on plain sockets, made for one job, proxying. Each
 * connection has a {@link RequestParser} and serves one request at a time (a pipelined request waits
 * until the response before it is written); a response is written straight to the socket, its head
 * corked with its first body bytes so that a small answer leaves in one system call.
 *
 * Limits (every one answers with a JSON error and closes the connection): heads over
 * `maxHeadBytes` or with too many fields (431), a head not complete within `headersTimeoutMs` of
 * its first byte, or a body silent for as long (408), bodies over `maxBodyBytes` (413, without
 * reading them). Idle keep-alive connections close after `keepAliveTimeoutMs`. All of these are
 * checked by one sweep per server, not a timer per connection.
 *
 * This file holds the server (listening, the sweep, closing); connection.ts one client connection
 * (parsing, pipelining, bodies, refusals); response.ts the response written to it.
 */

import { createServer, type Server } from "node:net";
import { Connection } from "./connection.js";
import type { OutgoingResponse } from "./response.js";

export { OutgoingResponse } from "./response.js";

export interface HttpServerOptions {
  /** Largest request head accepted (431 beyond). Default 16 KiB. */
  readonly maxHeadBytes?: number;
  /** Largest request body accepted (413 beyond). Default 1 MiB. */
  readonly maxBodyBytes?: number;
  /** Time a client has to send a whole head, and longest silence in a body (408 after). Default 10 s. */
  readonly headersTimeoutMs?: number;
  /** How long an idle keep-alive connection is kept. Default 65 s. */
  readonly keepAliveTimeoutMs?: number;
}

/** What a handler is given: a request's head, and its body on demand. */
export interface IncomingRequest {
  readonly method: string;
  readonly target: string;
  /** Header names and values in order, flat (`[name, value, …]`), as received. */
  readonly headers: readonly string[];
  readonly remoteAddress: string;
  /** True when the request declares a body (a Content-Length over 0, or chunked). */
  readonly hasBody: boolean;
  /**
   * The whole body; "too-large" past `maxBodyBytes` (answer 413: the connection closes after it);
   * "gone" when the client went away or was refused (408) before it sent the body (answer nothing).
   */
  body(): Promise<Buffer | "too-large" | "gone">;
}

export type Handler = (request: IncomingRequest, response: OutgoingResponse) => void;

export class HttpServer {
  readonly handler: Handler;
  readonly maxHeadBytes: number;
  readonly maxBodyBytes: number;
  readonly headersTimeoutMs: number;
  readonly keepAliveTimeoutMs: number;
  readonly #connections = new Set<Connection>();
  #server: Server | undefined;
  #sweeper: NodeJS.Timeout | undefined;

  constructor(options: HttpServerOptions, handler: Handler) {
    this.handler = handler;
    this.maxHeadBytes = options.maxHeadBytes ?? 16 * 1024;
    this.maxBodyBytes = options.maxBodyBytes ?? 1 << 20;
    this.headersTimeoutMs = options.headersTimeoutMs ?? 10_000;
    this.keepAliveTimeoutMs = options.keepAliveTimeoutMs ?? 65_000;
  }

  async listen(port: number, host: string): Promise<{ host: string; port: number }> {
    const server = createServer({ allowHalfOpen: true, noDelay: true }, (socket) => {
      this.#connections.add(new Connection(this, socket));
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, host, () => {
        server.off("error", reject);
        resolve();
      });
    });
    this.#server = server;
    const interval = Math.min(1_000, this.headersTimeoutMs, this.keepAliveTimeoutMs);
    this.#sweeper = setInterval(() => {
      const now = performance.now();
      for (const c of this.#connections) c.check(now);
    }, interval);
    this.#sweeper.unref();
    const address = server.address();
    return typeof address === "object" && address
      ? { host: address.address, port: address.port }
      : { host, port };
  }

  /** Open client connections. */
  get connections(): number {
    return this.#connections.size;
  }

  /** @internal */
  dropped(connection: Connection): void {
    this.#connections.delete(connection);
  }

  /** Stops accepting and closes every connection (answers in progress are cut short). */
  async close(): Promise<void> {
    if (this.#sweeper) clearInterval(this.#sweeper);
    this.#sweeper = undefined;
    const server = this.#server;
    this.#server = undefined;
    if (!server) return;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    // The server's 'close' comes before its sockets': wait for theirs too, so that every connection is dropped.
    const connections = [...this.#connections];
    const gone = connections.map(
      (c) => new Promise<void>((resolve) => c.socket.once("close", () => resolve())),
    );
    for (const c of connections) c.destroy();
    await Promise.all([closed, ...gone]);
  }
}
