/**
 * The response to one client request, written straight to the client's socket: the head is held
 * until the first body bytes (or the end) so that a small answer leaves in one write; the body is
 * framed by the upstream's Content-Length, else chunked (or delimited by the close for HTTP/1.0
 * clients). It is the upstream exchange's body sink: `write` says when to wait for 'drain'.
 */

import { STATUS_CODES } from "node:http";
import type { Socket } from "node:net";
import type { BodySink } from "../upstream/pool.js";
import type { RequestHead } from "./request-parser.js";

/** What a response needs of its connection. */
export interface ResponseConnection {
  readonly socket: Socket;
  /** The connection closes after this response (the client asked, or the server is closing). */
  readonly closing: boolean;
  readonly keepAliveSeconds: number;
  /** The response was written in full; `close` when the connection must close after it. */
  responseDone(close: boolean): void;
  destroy(): void;
}

const LAST_CHUNK = "0\r\n\r\n";
const EMPTY = Buffer.alloc(0);
/** Bodies up to this size are copied behind their head into one buffer rather than written after it. */
const SMALL_BODY_BYTES = 16 * 1024;

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
  readonly #connection: ResponseConnection;
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

  constructor(connection: ResponseConnection, head: RequestHead, close: boolean) {
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
