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
 */

import { STATUS_CODES } from "node:http";
import { createServer, type Server, type Socket } from "node:net";
import type { ErrorCode } from "../../lib/errors.js";
import type { BodySink } from "../upstream/pool.js";
import { type RequestHead, RequestParseError, RequestParser } from "./request-parser.js";

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

/** Error codes of the answers the server gives by itself, by status. */
const REFUSALS: Record<number, ErrorCode> = {
  400: "RINGFENCE_BAD_REQUEST",
  408: "RINGFENCE_REQUEST_TIMEOUT",
  413: "RINGFENCE_BODY_TOO_LARGE",
  417: "RINGFENCE_EXPECTATION_FAILED",
  431: "RINGFENCE_HEADERS_TOO_LARGE",
  501: "RINGFENCE_NOT_IMPLEMENTED",
  505: "RINGFENCE_HTTP_VERSION_NOT_SUPPORTED",
};

const CONTINUE = "HTTP/1.1 100 Continue\r\n\r\n";
const LAST_CHUNK = "0\r\n\r\n";
const EMPTY = Buffer.alloc(0);
/** Bodies up to this size are copied behind their head into one buffer rather than written after it. */
const SMALL_BODY_BYTES = 16 * 1024;
/** Pipelined bytes held while a response is written before the socket stops being read. */
const MAX_HELD_BYTES = 64 * 1024;

let dateSecond = -1;
let dateText = "";

/** The Date header's value, built once a second. */
function httpDate(): string {
  const now = Date.now();
  const second = Math.floor(now / 1000);
  if (second !== dateSecond) {
    dateSecond = second;
    dateText = new Date(now).toUTCString();
  }
  return dateText;
}

/** The response to one request. It is the upstream exchange's body sink. */
export class OutgoingResponse implements BodySink {
  readonly #connection: Connection;
  readonly #head: RequestHead;
  #status = 0;
  /** The head, rendered, until the first body bytes (or the end) carry it out. */
  #pendingHead: string | undefined;
  #framing: "length" | "chunked" | "close" | "none" = "none";
  #headersSent = false;
  /** No more bytes are taken: ended, destroyed, or the client went away. */
  #finished = false;
  /** Ended in full (what `writableFinished` tells: not when destroyed or aborted). */
  #ended = false;
  #close = false;
  #drain: (() => void)[] | undefined;
  #closed: (() => void)[] | undefined;

  constructor(connection: Connection, head: RequestHead, close: boolean) {
    this.#connection = connection;
    this.#head = head;
    this.#close = close;
  }

  get headersSent(): boolean {
    return this.#headersSent;
  }

  get writableFinished(): boolean {
    return this.#ended;
  }

  get status(): number {
    return this.#status;
  }

  /** Closes the connection after this response whatever the client asked. */
  closeAfter(): void {
    this.#close = true;
  }

  /**
   * Sets the status and headers (flat `[name, value, …]`, without hop-by-hop ones). A Content-Length
   * among them frames the body; otherwise it is chunked (or runs to the close for HTTP/1.0 clients).
   */
  writeHead(status: number, headers: readonly string[]): void {
    if (this.#finished) return;
    if (this.#headersSent) throw new Error("the response head was already written");
    this.#headersSent = true;
    this.#status = status;
    let lines = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? "Unknown"}\r\n`;
    let length = false;
    for (let i = 0; i < headers.length; i += 2) {
      const name = headers[i] as string;
      if (name.length === 14 && name.toLowerCase() === "content-length") length = true;
      lines += `${name}: ${headers[i + 1]}\r\n`;
    }
    const bodiless = this.#head.method === "HEAD" || status === 204 || status === 304 || status < 200;
    if (bodiless) this.#framing = "none";
    else if (length) this.#framing = "length";
    else if (this.#head.http10) {
      this.#framing = "close";
      this.#close = true;
    } else {
      this.#framing = "chunked";
      lines += "transfer-encoding: chunked\r\n";
    }
    if (this.#close || this.#connection.closing) {
      this.#close = true;
      lines += "connection: close\r\n\r\n";
    } else
      lines += this.#head.http10
        ? `connection: keep-alive\r\nkeep-alive: timeout=${this.#connection.keepAliveSeconds}\r\n\r\n`
        : `keep-alive: timeout=${this.#connection.keepAliveSeconds}\r\n\r\n`;
    this.#pendingHead = lines;
  }

  /** Writes body bytes; false when the socket's buffer is full (wait for 'drain'). */
  write(chunk: Buffer): boolean {
    if (this.#finished) return true;
    const socket = this.#connection.socket;
    if (this.#framing === "none" || chunk.length === 0) return this.#flushHead();
    const head = this.#pendingHead;
    if (head !== undefined && this.#framing === "length" && chunk.length <= SMALL_BODY_BYTES) {
      // The usual small answer: head and body copied into one buffer leave in one plain write.
      this.#pendingHead = undefined;
      const out = Buffer.allocUnsafe(head.length + chunk.length);
      out.write(head, 0, "latin1");
      chunk.copy(out, head.length);
      return socket.write(out);
    }
    socket.cork();
    if (head !== undefined) {
      this.#pendingHead = undefined;
      socket.write(head, "latin1");
    }
    let ok: boolean;
    if (this.#framing === "chunked") {
      socket.write(`${chunk.length.toString(16)}\r\n`, "latin1");
      socket.write(chunk);
      ok = socket.write("\r\n", "latin1");
    } else ok = socket.write(chunk);
    socket.uncork();
    return ok;
  }

  /** Ends the response (with `body` as its last bytes, when given). */
  end(body?: Buffer | string): void {
    if (this.#finished) return;
    if (!this.#headersSent) this.writeHead(200, []);
    const socket = this.#connection.socket;
    const bytes = typeof body === "string" ? Buffer.from(body) : (body ?? EMPTY);
    socket.cork();
    if (bytes.length > 0 && this.#framing !== "none") this.write(bytes);
    this.#flushHead();
    if (this.#framing === "chunked") socket.write(LAST_CHUNK, "latin1");
    socket.uncork();
    this.#finished = true;
    this.#ended = true;
    this.#drain = undefined;
    this.#closed = undefined;
    this.#connection.responseDone(this.#close);
  }

  /** A whole response at once: status, headers and a body with its Content-Length. */
  respond(status: number, headers: readonly string[], body: string | Buffer): void {
    if (this.#finished) return;
    const bytes = typeof body === "string" ? Buffer.from(body) : body;
    this.writeHead(status, [...headers, "date", httpDate(), "content-length", String(bytes.length)]);
    this.end(bytes);
  }

  /** Gives up on the response: the connection is closed (the client sees it cut short). */
  destroy(_error?: Error): void {
    if (this.#finished) return;
    this.#finished = true;
    this.#connection.destroy();
  }

  once(event: "drain" | "close", listener: () => void): this {
    if (this.#finished) return this;
    if (event === "drain") {
      this.#drain ??= [];
      this.#drain.push(listener);
    } else {
      this.#closed ??= [];
      this.#closed.push(listener);
    }
    return this;
  }

  /** @internal the socket drained. */
  drained(): void {
    const listeners = this.#drain;
    this.#drain = undefined;
    if (listeners) for (const l of listeners) l();
  }

  /** @internal the connection closed before the response finished. */
  aborted(): void {
    this.#finished = true;
    const drain = this.#drain;
    const closed = this.#closed;
    this.#drain = undefined;
    this.#closed = undefined;
    if (closed) for (const l of closed) l();
    // A body writer waiting for 'drain' must not wait forever.
    if (drain) for (const l of drain) l();
  }

  #flushHead(): boolean {
    const head = this.#pendingHead;
    if (head === undefined) return true;
    this.#pendingHead = undefined;
    return this.#connection.socket.write(head, "latin1");
  }
}

/** The body of the request in progress, gathered up to the limit. */
class BodyCollector {
  chunks: Buffer[] = [];
  size = 0;
  tooLarge = false;
  gone = false;
  complete = false;
  waiter: ((body: Buffer | "too-large" | "gone") => void) | undefined;

  settle(): void {
    const waiter = this.waiter;
    if (!waiter) return;
    if (this.gone || this.tooLarge) {
      this.waiter = undefined;
      waiter(this.gone ? "gone" : "too-large");
    } else if (this.complete) {
      this.waiter = undefined;
      waiter(this.chunks.length === 1 ? (this.chunks[0] as Buffer) : Buffer.concat(this.chunks, this.size));
    }
  }
}

/** One client connection. */
class Connection {
  readonly socket: Socket;
  readonly #server: HttpServer;
  readonly #parser: RequestParser;
  readonly remoteAddress: string;
  #response: OutgoingResponse | undefined;
  #body: BodyCollector | undefined;
  #head: RequestHead | undefined;
  /** Bytes that came after the request in progress (a pipelined request). */
  #held: Buffer | undefined;
  /** performance.now() when the current head began (or the connection became idle). */
  since: number;
  /** The connection waits for a next request and has none of its bytes. */
  idle = false;
  /** Not one byte came yet: the headers timeout applies, not the keep-alive one. */
  #fresh = true;
  /** A request whose head was read, handed to the handler once the bytes in hand are parsed. */
  #dispatch: { request: IncomingRequest; response: OutgoingResponse } | undefined;
  #clientEnded = false;
  #dead = false;
  closing = false;

  constructor(server: HttpServer, socket: Socket) {
    this.#server = server;
    this.socket = socket;
    this.remoteAddress = socket.remoteAddress ?? "";
    this.since = performance.now();
    this.#parser = new RequestParser(
      {
        onHead: (head) => this.#onHead(head),
        onBody: (chunk) => this.#onBody(chunk),
        onComplete: () => this.#onComplete(),
      },
      { maxHeadBytes: server.maxHeadBytes },
    );
    socket.setNoDelay(true);
    socket.on("data", (chunk: Buffer) => this.#onData(chunk));
    socket.on("end", () => this.#onEnd());
    socket.on("error", () => this.destroy());
    socket.on("close", () => this.#onClose());
    socket.on("drain", () => this.#response?.drained());
  }

  get keepAliveSeconds(): number {
    return Math.max(1, Math.floor(this.#server.keepAliveTimeoutMs / 1000));
  }

  /** Checked by the server's sweep: head or body too slow, or idle too long. */
  check(now: number): void {
    if (this.#dead || this.#response?.headersSent) return;
    if (this.idle) {
      if (now - this.since > this.#server.keepAliveTimeoutMs) this.destroy();
      return;
    }
    const waiting = this.#fresh || this.#parser.inHead || this.#parser.inBody;
    if (waiting && now - this.since > this.#server.headersTimeoutMs) {
      const what = this.#parser.inBody ? "its request body" : "a whole request head";
      this.#refuse(408, `the client did not send ${what} within ${this.#server.headersTimeoutMs} ms`);
    }
  }

  /** @internal the response in progress has ended. */
  responseDone(close: boolean): void {
    this.#response = undefined;
    this.#head = undefined;
    const unread = this.#body !== undefined && !this.#body.complete;
    this.#body = undefined;
    const held = this.#held;
    // A client that ended its side is still answered the requests it sent before its end.
    const more = held !== undefined && held.length > 0;
    if (close || unread || (this.#clientEnded && !more) || this.closing || !this.#parser.done) {
      this.#endSoon();
      return;
    }
    this.#parser.reset();
    this.idle = true;
    this.since = performance.now();
    this.#held = undefined;
    if (this.socket.isPaused()) this.socket.resume();
    if (more) this.#onData(held);
    // What an ended client left after its last whole request can never become one.
    if (this.#clientEnded && this.#response === undefined) this.#endSoon();
  }

  destroy(): void {
    if (this.#dead) return;
    this.#dead = true;
    this.socket.destroy();
  }

  /** Closes once nothing is in progress (server shutdown). */
  shutdown(): void {
    this.closing = true;
    if (this.#response === undefined) this.destroy();
  }

  #onData(chunk: Buffer): void {
    if (this.#dead) return;
    if (this.#parser.done) {
      // A pipelined request: held until the response to the one before it has been written.
      this.#held = this.#held === undefined ? chunk : Buffer.concat([this.#held, chunk]);
      if (this.#held.length > MAX_HELD_BYTES) this.socket.pause();
      return;
    }
    if (this.idle || this.#fresh) {
      this.idle = false;
      this.#fresh = false;
      this.since = performance.now();
    }
    let rest: Buffer | undefined;
    try {
      rest = this.#parser.feed(chunk);
    } catch (err) {
      this.#dispatch = undefined;
      if (err instanceof RequestParseError) this.#refuse(err.status, err.message);
      else this.#refuse(400, (err as Error).message);
      return;
    }
    if (rest !== undefined && rest.length > 0) {
      this.#held = this.#held === undefined ? rest : Buffer.concat([this.#held, rest]);
      if (this.#held.length > MAX_HELD_BYTES) this.socket.pause();
    }
    const dispatch = this.#dispatch;
    if (dispatch !== undefined) {
      this.#dispatch = undefined;
      this.#server.handler(dispatch.request, dispatch.response);
    }
  }

  #onHead(head: RequestHead): void {
    this.#head = head;
    const response = new OutgoingResponse(this, head, !head.keepAlive);
    this.#response = response;
    const hasBody = head.chunked || head.contentLength > 0;
    if (hasBody) {
      const body = new BodyCollector();
      this.#body = body;
      if (head.contentLength > this.#server.maxBodyBytes) {
        // Not read: the answer is 413 and the connection closes after it.
        body.tooLarge = true;
        response.closeAfter();
        this.socket.pause();
      }
    }
    const request: IncomingRequest = {
      method: head.method,
      target: head.target,
      headers: head.headers,
      remoteAddress: this.remoteAddress,
      hasBody,
      body: () => this.#readBody(),
    };
    this.#dispatch = { request, response };
  }

  #readBody(): Promise<Buffer | "too-large" | "gone"> {
    const body = this.#body;
    if (body === undefined) return Promise.resolve(EMPTY);
    return new Promise((resolve) => {
      body.waiter = resolve;
      if (
        this.#head?.expectContinue &&
        !body.tooLarge &&
        !body.complete &&
        this.#response?.headersSent === false
      )
        this.socket.write(CONTINUE, "latin1");
      body.settle();
    });
  }

  #onBody(chunk: Buffer): void {
    const body = this.#body;
    if (body === undefined || body.tooLarge) return;
    this.since = performance.now();
    body.size += chunk.length;
    if (body.size > this.#server.maxBodyBytes) {
      body.tooLarge = true;
      body.chunks = [];
      this.#response?.closeAfter();
      this.socket.pause();
      body.settle();
      return;
    }
    body.chunks.push(chunk);
  }

  #onComplete(): void {
    const body = this.#body;
    if (body === undefined) return;
    body.complete = true;
    body.settle();
  }

  /** Answers an error by itself and closes the connection after it. */
  #refuse(status: number, message: string): void {
    this.#parser.reset();
    const response = this.#response;
    if (response?.headersSent) {
      this.destroy();
      return;
    }
    const head: RequestHead = this.#head ?? {
      method: "GET",
      target: "/",
      http10: false,
      headers: [],
      keepAlive: false,
      expectContinue: false,
      contentLength: -1,
      chunked: false,
    };
    // The handler's response (if it has one) can no longer be answered: this refusal is the answer.
    response?.aborted();
    const out = new OutgoingResponse(this, head, true);
    this.#response = out;
    // A handler waiting for the body learns that it will not come.
    if (this.#body) {
      this.#body.gone = true;
      this.#body.settle();
    }
    this.socket.pause();
    out.respond(
      status,
      ["content-type", "application/json"],
      JSON.stringify({ error: { code: REFUSALS[status] ?? "RINGFENCE_BAD_REQUEST", message } }),
    );
  }

  #endSoon(): void {
    if (this.#dead) return;
    this.#dead = true;
    this.socket.end();
    // A client that never reads would keep the socket: destroy it if the end does not go through.
    setTimeout(() => this.socket.destroy(), 5_000).unref();
  }

  #onEnd(): void {
    this.#clientEnded = true;
    // A body cut short by the end can never be completed: the client went away.
    if (this.#parser.inBody) this.destroy();
    // Half-closed by the client: the answer in progress is still written, then the connection ends.
    else if (this.#response === undefined) this.#endSoon();
  }

  #onClose(): void {
    this.#dead = true;
    this.#server.dropped(this);
    const response = this.#response;
    this.#response = undefined;
    if (response && !response.writableFinished) response.aborted();
    if (this.#body) {
      this.#body.gone = true;
      this.#body.settle();
    }
  }
}

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
