/**
 * Keep-alive HTTP/1.1 connections from the router to one upstream instance, and the exchanges
 * (one request, one response) that run on them.
 *
 * This is the router's hot path, so it is small and direct: a request head is rendered once as a
 * string and written with its body in one `writev`; the response is parsed by {@link ResponseParser}
 * and its body chunks go straight to the client's response with backpressure, never through an
 * intermediate stream. Idle connections are reused newest first, and closed before the upstream's
 * own `Keep-Alive: timeout` would close them under us. Deadlines (time to the response head, idle
 * time in the body) are checked by one sweep per pool every {@link SWEEP_MS} ms instead of a timer
 * per request.
 *
 * Errors carry a stable `code` (the socket's, like `ECONNREFUSED`, or `UPSTREAM_*`) and `notSent`:
 * true only when the connection was never established, so not one byte of the request left.
 */
import { connect, type Socket } from "node:net";
import { type ResponseHead, ResponseParseError, ResponseParser } from "./parser.js";

/** Body bytes an exchange holds before its body is taken (then the connection is paused). */
const MAX_BUFFERED_BYTES = 64 * 1024;

/** How often deadlines and idle connections are checked. */
export const SWEEP_MS = 20;

/** One request to send upstream. */
export interface UpstreamRequest {
  readonly method: string;
  /** The request target (path and query). */
  readonly path: string;
  /** Header lines, each ending in CRLF, without Host, Content-Length or hop-by-hop headers. */
  readonly headerLines: string;
  readonly body: Buffer | undefined;
}

/** Limits of one exchange. */
export interface ExchangeLimits {
  /** From the request to the response head (queueing and connecting included). */
  readonly headersTimeoutMs: number;
  /** Longest silence while the body arrives. */
  readonly bodyTimeoutMs: number;
}

/** Where an exchange's response body goes: the client's `ServerResponse` in the router. */
export interface BodySink {
  write(chunk: Buffer): boolean;
  end(): void;
  destroy(error?: Error): void;
  once(event: "drain" | "close", listener: () => void): unknown;
  readonly writableFinished: boolean;
}

export interface UpstreamPoolOptions {
  readonly host: string;
  readonly port: number;
  /** Connections open at once; further requests wait in order. Default 128. */
  readonly maxConnections?: number;
  /** How long an idle connection is kept. Default 30 s (less when the upstream says so). */
  readonly idleTimeoutMs?: number;
  /** Time to establish a connection. Default 2 s. */
  readonly connectTimeoutMs?: number;
}

/** Why an exchange failed. */
export class UpstreamError extends Error {
  readonly code: string;
  /** True when no byte of the request reached the upstream (the connection never opened). */
  readonly notSent: boolean;
  constructor(code: string, message: string, notSent = false) {
    super(message);
    this.name = "UpstreamError";
    this.code = code;
    this.notSent = notSent;
  }
}

type HeadCallback = (error: UpstreamError | undefined, head: ResponseHead | undefined) => void;

const noop = (): void => {};

/** One request and its response. Created by {@link UpstreamPool.request}. */
export class Exchange {
  readonly request: UpstreamRequest;
  #pool: UpstreamPool;
  #onHead: HeadCallback | undefined;
  /** Where the exchange stands: waiting, then the head, then the body, then done or failed. */
  #state: "queued" | "sent" | "body" | "done" | "failed" = "queued";
  #connection: Connection | undefined;
  #sink: BodySink | undefined;
  #discard = false;
  /** A 'drain' listener is on the sink: one is enough, however many writes pushed back. */
  #awaitingDrain = false;
  #buffered: Buffer[] = [];
  #bufferedBytes = 0;
  #onDone: ((error?: Error) => void) | undefined;
  #error: UpstreamError | undefined;
  /** performance.now() by which the head (then the next body chunk) must arrive. */
  deadline: number;
  readonly #limits: ExchangeLimits;

  constructor(pool: UpstreamPool, request: UpstreamRequest, limits: ExchangeLimits, onHead: HeadCallback) {
    this.#pool = pool;
    this.request = request;
    this.#limits = limits;
    this.#onHead = onHead;
    this.deadline = performance.now() + limits.headersTimeoutMs;
  }

  /** Sends the body to `sink` (chunks that came before are written first); `done` runs once at the end. */
  pipe(sink: BodySink, done: (error?: Error) => void = noop): void {
    this.#sink = sink;
    this.#onDone = done;
    if (this.#state === "done") {
      // The whole (small) response is already here: write it and finish, nothing to watch.
      const buffered = this.#buffered;
      this.#buffered = [];
      this.#bufferedBytes = 0;
      for (const chunk of buffered) sink.write(chunk);
      this.#finish();
      return;
    }
    sink.once("close", () => {
      if (!sink.writableFinished && this.#state !== "done" && this.#state !== "failed")
        this.abort("UPSTREAM_ABORTED", "the client went away");
    });
    const buffered = this.#buffered;
    this.#buffered = [];
    this.#bufferedBytes = 0;
    for (const chunk of buffered) this.#write(chunk);
    if (this.#state === "failed") this.#finish(this.#error);
    else if (!this.#awaitingDrain) this.#connection?.resume();
  }

  /** Reads and drops the body, keeping the connection for the next request. */
  discard(): void {
    this.#discard = true;
    this.#buffered = [];
    this.#bufferedBytes = 0;
    this.#connection?.resume();
  }

  /** Gives up: the exchange fails with `code` and its connection is closed. Idempotent. */
  abort(code = "UPSTREAM_ABORTED", message = "the request was cancelled"): void {
    if (this.#state === "done" || this.#state === "failed") return;
    const connection = this.#connection;
    // A request still waiting for a connection was never sent: safe to retry anywhere.
    this.fail(new UpstreamError(code, message, this.#state === "queued"));
    connection?.destroy();
  }

  /** Called by the pool once a connection carries the request. */
  attach(connection: Connection): void {
    this.#connection = connection;
    this.#state = "sent";
  }

  /** @internal the response head arrived. */
  head(head: ResponseHead): void {
    this.#state = "body";
    this.deadline = performance.now() + this.#limits.bodyTimeoutMs;
    const onHead = this.#onHead;
    this.#onHead = undefined;
    onHead?.(undefined, head);
  }

  /** @internal a body chunk arrived. */
  body(chunk: Buffer): void {
    this.deadline = performance.now() + this.#limits.bodyTimeoutMs;
    if (this.#discard) return;
    if (this.#sink === undefined) {
      this.#buffered.push(chunk);
      this.#bufferedBytes += chunk.length;
      // Hold a little until someone takes the body. Small answers are usually whole by then, and
      // not pausing for them spares the socket a pause and resume per response.
      if (this.#bufferedBytes > MAX_BUFFERED_BYTES) this.#connection?.pause();
      return;
    }
    this.#write(chunk);
  }

  /** @internal the whole response was read. */
  complete(): void {
    if (this.#state === "failed") return;
    this.#state = "done";
    // The connection goes back to the pool: a late backpressure pause must not reach it.
    this.#connection = undefined;
    this.#pool.forget(this);
    if (this.#sink !== undefined) this.#finish();
  }

  /** @internal the exchange failed (before or during the body). */
  fail(error: UpstreamError): void {
    if (this.#state === "done" || this.#state === "failed") return;
    this.#state = "failed";
    this.#error = error;
    this.#connection = undefined;
    this.#pool.forget(this);
    const onHead = this.#onHead;
    this.#onHead = undefined;
    if (onHead) onHead(error, undefined);
    else if (this.#sink !== undefined) this.#finish(error);
  }

  /** True once the response head was delivered and before the exchange ended. */
  get inBody(): boolean {
    return this.#state === "body";
  }

  get finished(): boolean {
    return this.#state === "done" || this.#state === "failed";
  }

  #write(chunk: Buffer): void {
    const sink = this.#sink as BodySink;
    if (sink.write(chunk)) return;
    this.#connection?.pause();
    // A slow client is not a stalled upstream: the body timeout waits while the client drains.
    this.deadline = Number.POSITIVE_INFINITY;
    if (this.#awaitingDrain) return;
    this.#awaitingDrain = true;
    sink.once("drain", () => {
      this.#awaitingDrain = false;
      this.deadline = performance.now() + this.#limits.bodyTimeoutMs;
      // The connection as of now: none once the exchange ended, as it may carry another exchange.
      this.#connection?.resume();
    });
  }

  #finish(error?: Error): void {
    const sink = this.#sink as BodySink;
    const done = this.#onDone ?? noop;
    this.#onDone = undefined;
    if (error) sink.destroy(error);
    else sink.end();
    done(error);
  }
}

/** One keep-alive connection to the upstream. */
class Connection {
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

/** Connections to one upstream and the requests waiting for one. */
export class UpstreamPool {
  readonly target: { readonly host: string; readonly port: number };
  readonly name: string;
  readonly #maxConnections: number;
  readonly #idleTimeoutMs: number;
  readonly #connectTimeoutMs: number;
  #all = new Set<Connection>();
  #idle: Connection[] = [];
  #queue: Exchange[] = [];
  #active = new Set<Exchange>();
  #sweeper: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(options: UpstreamPoolOptions) {
    this.target = { host: options.host, port: options.port };
    this.name = `${options.host}:${options.port}`;
    this.#maxConnections = options.maxConnections ?? 128;
    this.#idleTimeoutMs = options.idleTimeoutMs ?? 30_000;
    this.#connectTimeoutMs = options.connectTimeoutMs ?? 2_000;
  }

  /**
   * Sends a request; `onHead` runs once, with the response head or the error that ended the
   * exchange before it. Then `pipe` or `discard` the returned exchange's body.
   */
  request(request: UpstreamRequest, limits: ExchangeLimits, onHead: HeadCallback): Exchange {
    const exchange = new Exchange(this, request, limits, onHead);
    if (this.#closed) {
      exchange.fail(new UpstreamError("UPSTREAM_POOL_CLOSED", `${this.name}: the pool is closed`, true));
      return exchange;
    }
    this.#active.add(exchange);
    this.#sweep();
    const idle = this.#takeIdle();
    if (idle) idle.send(exchange);
    else if (this.#all.size < this.#maxConnections) this.#open().send(exchange);
    else this.#queue.push(exchange);
    return exchange;
  }

  /** Connections open, idle, and requests waiting for one. */
  stats(): { open: number; idle: number; queued: number; active: number } {
    return {
      open: this.#all.size,
      idle: this.#idle.length,
      queued: this.#queue.length,
      active: this.#active.size,
    };
  }

  /** Closes every connection and fails what is in flight or waiting. */
  close(): void {
    this.#closed = true;
    if (this.#sweeper) clearInterval(this.#sweeper);
    this.#sweeper = undefined;
    for (const exchange of [...this.#queue, ...this.#active])
      exchange.abort("UPSTREAM_POOL_CLOSED", `${this.name}: the pool was closed`);
    this.#queue = [];
    for (const connection of this.#all) connection.destroy();
  }

  /** @internal a connection finished its exchange and may carry another. */
  release(connection: Connection): void {
    const next = this.#queue.shift();
    if (next) {
      connection.send(next);
      return;
    }
    const now = performance.now();
    connection.idleUntil = now + Math.min(this.#idleTimeoutMs, connection.keepAliveMs);
    if (connection.idleUntil <= now) {
      connection.destroy();
      return;
    }
    connection.resume();
    this.#idle.push(connection);
  }

  /** @internal a connection closed. */
  dropped(connection: Connection): void {
    this.#all.delete(connection);
    const i = this.#idle.indexOf(connection);
    if (i >= 0) this.#idle.splice(i, 1);
    // A waiting request gets a new connection in place of the closed one.
    if (this.#queue.length > 0 && !this.#closed && this.#all.size < this.#maxConnections) {
      const next = this.#queue.shift() as Exchange;
      this.#open().send(next);
    }
  }

  /** @internal an exchange ended. */
  forget(exchange: Exchange): void {
    this.#active.delete(exchange);
    const i = this.#queue.indexOf(exchange);
    if (i >= 0) this.#queue.splice(i, 1);
  }

  #takeIdle(): Connection | undefined {
    for (;;) {
      const c = this.#idle.pop();
      if (c === undefined || !c.dead) return c;
    }
  }

  #open(): Connection {
    const socket = connect({ host: this.target.host, port: this.target.port });
    const connection = new Connection(this, socket);
    this.#all.add(connection);
    const timer = setTimeout(() => {
      socket.destroy(
        Object.assign(new Error(`no connection within ${this.#connectTimeoutMs} ms`), {
          code: "UPSTREAM_CONNECT_TIMEOUT",
        }),
      );
    }, this.#connectTimeoutMs);
    timer.unref();
    socket.once("connect", () => clearTimeout(timer));
    socket.once("close", () => clearTimeout(timer));
    return connection;
  }

  /** Starts the sweep while there is anything to watch. */
  #sweep(): void {
    if (this.#sweeper !== undefined) return;
    this.#sweeper = setInterval(() => {
      const now = performance.now();
      for (const exchange of this.#active) {
        if (exchange.deadline <= now)
          exchange.abort(
            exchange.inBody ? "UPSTREAM_BODY_TIMEOUT" : "UPSTREAM_HEADERS_TIMEOUT",
            exchange.inBody
              ? `${this.name}: the response body stalled`
              : `${this.name}: no response head in time`,
          );
      }
      for (let i = this.#idle.length - 1; i >= 0; i--) {
        const c = this.#idle[i] as Connection;
        if (c.idleUntil <= now) {
          this.#idle.splice(i, 1);
          c.destroy();
        }
      }
      if (this.#active.size === 0 && this.#idle.length === 0) {
        clearInterval(this.#sweeper);
        this.#sweeper = undefined;
      }
    }, SWEEP_MS);
    this.#sweeper.unref();
  }
}
