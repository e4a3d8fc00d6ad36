/**
 * One keep-alive connection from the router to an upstream: it writes an exchange's request (head
 * and body in one go), feeds the answer through a {@link ResponseParser} to the exchange, and goes
 * back to its pool when the response was read in full and the connection may be reused.
 */
import type { Socket } from "node:net";
import { type Exchange, UpstreamError } from "./exchange.js";
import { ResponseParseError, ResponseParser } from "./parser.js";
import type { UpstreamPool } from "./pool.js";

/** One keep-alive connection to the upstream. */
export class Connection {
  readonly #pool: UpstreamPool;
  readonly socket: Socket;
  readonly #parser: ResponseParser;
  #exchange: Exchange | undefined;
  #connected = false;
  #dead = false;
  /** performance.now() after which an idle connection is closed. */
  idleUntil = 0;
  /** How long the upstream keeps an idle connection, less a second; from its last `Keep-Alive: timeout`. */
  keepAliveMs = Number.POSITIVE_INFINITY;

  constructor(pool: UpstreamPool, socket: Socket) {
    this.#pool = pool;
    this.socket = socket;
    this.#parser = new ResponseParser({
      onHead: (head) => {
        // Close a second before the upstream would, so a request never meets a closing connection.
        if (head.keepAliveTimeoutMs !== undefined) this.keepAliveMs = head.keepAliveTimeoutMs - 1_000;
        this.#exchange?.head(head);
      },
      onBody: (chunk) => this.#exchange?.body(chunk),
      onComplete: () => this.#exchange?.complete(),
    });
    socket.setNoDelay(true);
    socket.on("connect", () => {
      this.#connected = true;
    });
    socket.on("data", (chunk: Buffer) => this.#onData(chunk));
    socket.on("end", () => this.#onEnd());
    socket.on("error", (err: Error & { code?: string }) => this.#onError(err));
    socket.on("close", () => this.#onClose());
  }

  get busy(): boolean {
    return this.#exchange !== undefined;
  }

  get dead(): boolean {
    return this.#dead;
  }

  /** Writes the exchange's request: head and body in one go. */
  send(exchange: Exchange): void {
    this.#exchange = exchange;
    exchange.attach(this);
    // Defensive: a connection is never handed out paused, or its answer would never be read.
    if (this.socket.isPaused()) this.socket.resume();
    const r = exchange.request;
    this.#parser.start(r.method);
    const { host, port } = this.#pool.target;
    const head =
      r.body === undefined
        ? `${r.method} ${r.path} HTTP/1.1\r\nhost: ${host}:${port}\r\n${r.headerLines}\r\n`
        : `${r.method} ${r.path} HTTP/1.1\r\nhost: ${host}:${port}\r\n${r.headerLines}content-length: ${r.body.length}\r\n\r\n`;
    if (r.body === undefined || r.body.length === 0) {
      this.socket.write(head, "latin1");
      return;
    }
    this.socket.cork();
    this.socket.write(head, "latin1");
    this.socket.write(r.body);
    this.socket.uncork();
  }

  pause(): void {
    this.socket.pause();
  }

  resume(): void {
    if (!this.#dead) this.socket.resume();
  }

  destroy(): void {
    if (this.#dead) return;
    this.#dead = true;
    this.socket.destroy();
  }

  #onData(chunk: Buffer): void {
    const exchange = this.#exchange;
    if (exchange === undefined) {
      // Nothing was asked: an upstream that talks out of turn is not trusted with the next request.
      this.destroy();
      return;
    }
    try {
      this.#parser.feed(chunk);
    } catch (err) {
      const message = err instanceof ResponseParseError ? err.message : String(err);
      this.#exchange = undefined;
      exchange.fail(new UpstreamError("UPSTREAM_PROTOCOL", message));
      this.destroy();
      return;
    }
    if (!this.#parser.done) return;
    // Released only once the chunk is fully parsed: bytes past the response make it unusable.
    this.#exchange = undefined;
    if (this.#parser.reusable && !this.#dead) this.#pool.release(this);
    else this.destroy();
  }

  #onEnd(): void {
    const exchange = this.#exchange;
    if (exchange !== undefined) {
      try {
        // With the exchange still attached: a body that runs to the close completes through it.
        this.#parser.end();
      } catch (err) {
        exchange.fail(new UpstreamError("UPSTREAM_CLOSED", (err as Error).message));
      }
    }
    this.#exchange = undefined;
    this.destroy();
  }

  #onError(err: Error & { code?: string }): void {
    const exchange = this.#exchange;
    this.#exchange = undefined;
    exchange?.fail(
      new UpstreamError(
        err.code ?? "UPSTREAM_SOCKET",
        `${this.#pool.name}: ${err.message}`,
        !this.#connected,
      ),
    );
    this.destroy();
  }

  #onClose(): void {
    this.#dead = true;
    const exchange = this.#exchange;
    this.#exchange = undefined;
    exchange?.fail(
      new UpstreamError(
        "UPSTREAM_CLOSED",
        `${this.#pool.name} closed the connection before the response was complete`,
        !this.#connected,
      ),
    );
    this.#pool.dropped(this);
  }
}
