/**
 * One client connection of the router's HTTP/1.1 server: its bytes go through a
 * {@link RequestParser}; one request is served at a time (a pipelined request waits, held, until
 * the response before it is written); the body of the request in progress is gathered on demand,
 * up to the limit; refusals (400, 408, 413, 417, 431, 501, 505) are answered with a JSON error and
 * close the connection; the server's sweep asks {@link Connection.check} about timeouts.
 */

import type { Socket } from "node:net";
import type { ErrorCode } from "../../lib/errors.js";
import type { HttpServer, IncomingRequest } from "./http-server.js";
import { type RequestHead, RequestParseError, RequestParser } from "./request-parser.js";
import { OutgoingResponse } from "./response.js";

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
const EMPTY = Buffer.alloc(0);
/** Pipelined bytes held while a response is written before the socket stops being read. */
const MAX_HELD_BYTES = 64 * 1024;

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
export class Connection {
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
