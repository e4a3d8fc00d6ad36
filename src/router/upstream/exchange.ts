/**
 * One exchange with an upstream: a request and its response, from waiting for a connection to the
 * end of the body. The response head goes to a callback; the body goes to a {@link BodySink} (the
 * client's response) with backpressure, or is held (a little) until someone takes it, or dropped.
 *
 * Errors carry a stable `code` (the socket's, like `ECONNREFUSED`, or `UPSTREAM_*`) and `notSent`:
 * true only when the connection was never established, so not one byte of the request left.
 */
import type { Connection } from "./connection.js";
import type { ResponseHead } from "./parser.js";
import type { UpstreamPool } from "./pool.js";

/** Body bytes an exchange holds before its body is taken (then the connection is paused). */
const MAX_BUFFERED_BYTES = 64 * 1024;

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

export type HeadCallback = (error: UpstreamError | undefined, head: ResponseHead | undefined) => void;

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
