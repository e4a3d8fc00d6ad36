/**
 * An incremental, strict HTTP/1.1 response parser for the router's upstream connections. It is fed
 * the socket's chunks as they come and reports the head, the body (with chunked transfer coding
 * removed) and the end of the message through callbacks, without copying body bytes.
 *
 * Framing follows RFC 9112 §6.3: no body after HEAD, 1xx, 204 and 304; `Transfer-Encoding: chunked`;
 * `Content-Length`; otherwise the body runs to the end of the connection. What could be a request
 * smuggling or response splitting attempt is refused rather than guessed at: both Transfer-Encoding
 * and Content-Length, differing Content-Lengths, a transfer coding other than a final `chunked`,
 * obsolete line folding, bare CR or LF, NUL and other control characters in a header, heads over
 * 64 KiB. Interim 1xx answers (100, 103) are skipped; 101 is refused (the router never asks to
 * upgrade).
 */

import { BodyFraming } from "../http1/body.js";
import { HeadBuffer } from "../http1/head.js";
import { checkHeaders, checkValue, contentLengthOf, Http1SyntaxError, headerLine } from "../http1/syntax.js";

/** Why a response could not be parsed; the connection it came on is not reused. */
export class ResponseParseError extends Error {
  readonly code = "UPSTREAM_PROTOCOL";
  constructor(message: string) {
    super(`the upstream's response is not valid HTTP/1.1: ${message}`);
    this.name = "ResponseParseError";
  }
}

/** The head of a response. */
export interface ResponseHead {
  readonly status: number;
  /** Header names and values in order, flat (`[name, value, name, value, …]`), as received. */
  readonly headers: string[];
  /** Whether the connection may carry another request once this response has been read. */
  readonly keepAlive: boolean;
  /** The upstream's `Keep-Alive: timeout=N`, in ms, when it sent one. */
  readonly keepAliveTimeoutMs: number | undefined;
}

/** What the parser reports; called synchronously from {@link ResponseParser.feed}. */
export interface ResponseEvents {
  onHead(head: ResponseHead): void;
  onBody(chunk: Buffer): void;
  onComplete(): void;
}

/** The largest response head accepted. */
export const MAX_HEAD_BYTES = 64 * 1024;
/** The most header fields accepted in a head. */
export const MAX_HEADERS = 256;

type State = "idle" | "head" | "body" | "close" | "done";

export class ResponseParser {
  readonly #events: ResponseEvents;
  readonly #body: BodyFraming;
  #state: State = "idle";
  #noBody = false;
  readonly #headBuffer = new HeadBuffer();
  #keepAlive = false;
  #extra = false;

  constructor(events: ResponseEvents) {
    this.#events = events;
    this.#body = new BodyFraming(events.onBody, () => this.#complete());
  }

  /** Readies the parser for the response to one request (`HEAD` answers carry no body). */
  start(method: string): void {
    this.#state = "head";
    this.#noBody = method === "HEAD";
    this.#headBuffer.clear();
    this.#keepAlive = false;
    this.#extra = false;
  }

  /** True once the whole response was read. */
  get done(): boolean {
    return this.#state === "done";
  }

  /** True while a response has been asked for and its head has not come yet. */
  get awaitingHead(): boolean {
    return this.#state === "head";
  }

  /** Whether the connection may carry another request: the response said so and nothing followed it. */
  get reusable(): boolean {
    return this.#state === "done" && this.#keepAlive && !this.#extra;
  }

  /** Parses the next bytes from the connection; throws {@link ResponseParseError}. */
  feed(chunk: Buffer): void {
    try {
      this.#feed(chunk);
    } catch (err) {
      if (err instanceof Http1SyntaxError) throw new ResponseParseError(err.message);
      throw err;
    }
  }

  #feed(chunk: Buffer): void {
    let data = chunk;
    while (data.length > 0) {
      switch (this.#state) {
        case "head": {
          const rest = this.#head(data);
          if (rest === undefined) return;
          data = rest;
          break;
        }
        case "body":
          data = this.#body.feed(data);
          break;
        case "close":
          this.#events.onBody(data);
          return;
        case "done":
          // Bytes after a complete response: nothing was asked for, so the connection is not reused.
          this.#extra = true;
          return;
        case "idle":
          throw new ResponseParseError("bytes arrived before any request was sent");
      }
    }
  }

  /** The connection ended: completes a body that runs to the close; throws if a response was cut short. */
  end(): void {
    if (this.#state === "close") {
      this.#complete();
      return;
    }
    if (this.#state === "done" || this.#state === "idle") return;
    throw new ResponseParseError(
      this.#state === "head"
        ? "the connection closed before a response head"
        : "the connection closed in the middle of the response body",
    );
  }

  /** Reads the head from the start of `data` (plus what was pending); returns the bytes after it. */
  #head(data: Buffer): Buffer | undefined {
    const end = this.#headBuffer.find(data);
    const buf = this.#headBuffer.buf;
    if (end < 0) {
      if (buf.length > MAX_HEAD_BYTES) throw new ResponseParseError(`head over ${MAX_HEAD_BYTES} bytes`);
      this.#headBuffer.keep();
      return undefined;
    }
    if (end > MAX_HEAD_BYTES) throw new ResponseParseError(`head over ${MAX_HEAD_BYTES} bytes`);
    const rest = buf.subarray(end + 4);
    const interim = this.#parseHead(buf.toString("latin1", 0, end));
    // An interim answer (100 Continue, 103 Early Hints) is followed by the real one.
    if (interim) this.#state = "head";
    return rest;
  }

  /** Parses a head; true when it was an interim 1xx answer to skip. */
  #parseHead(text: string): boolean {
    let lineEnd = text.indexOf("\r\n");
    if (lineEnd < 0) lineEnd = text.length;
    const status = statusOf(text, lineEnd);
    const http10 = text.charCodeAt(7) === 48; // "HTTP/1.0"
    if (status === 101) throw new ResponseParseError("101 Switching Protocols was not asked for");
    if (status < 200) {
      checkHeaders(text, lineEnd);
      return true;
    }
    const headers: string[] = [];
    let contentLength = -1;
    let chunked = false;
    let transferEncoding = false;
    let close = http10;
    let closeAsked = false;
    let keepAliveTimeoutMs: number | undefined;
    let at = lineEnd + 2;
    while (at < text.length) {
      let next = text.indexOf("\r\n", at);
      if (next < 0) next = text.length;
      if (headers.length >= MAX_HEADERS * 2) throw new ResponseParseError(`more than ${MAX_HEADERS} headers`);
      const [name, value] = headerLine(text, at, next);
      headers.push(name, value);
      at = next + 2;
      switch (name.length) {
        case 10:
          if (name.toLowerCase() === "connection") {
            const v = value.toLowerCase();
            if (v.includes("close")) close = closeAsked = true;
            else if (http10 && !closeAsked && v.includes("keep-alive")) close = false;
          } else if (name.toLowerCase() === "keep-alive") keepAliveTimeoutMs = keepAliveTimeout(value);
          break;
        case 14:
          if (name.toLowerCase() === "content-length") {
            const n = contentLengthOf(value);
            if (contentLength !== -1 && contentLength !== n)
              throw new ResponseParseError("two different Content-Length headers");
            contentLength = n;
          }
          break;
        case 17:
          if (name.toLowerCase() === "transfer-encoding") {
            if (transferEncoding) throw new ResponseParseError("more than one Transfer-Encoding header");
            transferEncoding = true;
            const codings = value.toLowerCase().split(",");
            const last = codings[codings.length - 1]?.trim();
            if (codings.length !== 1 || last !== "chunked")
              throw new ResponseParseError(`unsupported Transfer-Encoding '${value}' (only chunked)`);
            chunked = true;
          }
          break;
      }
    }
    if (transferEncoding && contentLength !== -1)
      throw new ResponseParseError("both Transfer-Encoding and Content-Length");
    this.#keepAlive = !close;
    if (this.#noBody || status === 204 || status === 304) this.#state = "done";
    else if (chunked) {
      this.#state = "body";
      this.#body.chunked();
    } else if (contentLength > 0) {
      this.#state = "body";
      this.#body.length(contentLength);
    } else if (contentLength === 0) this.#state = "done";
    else {
      this.#state = "close";
      this.#keepAlive = false;
    }
    this.#events.onHead({ status, headers, keepAlive: this.#keepAlive, keepAliveTimeoutMs });
    if (this.#state === "done") this.#events.onComplete();
    return false;
  }

  #complete(): void {
    this.#state = "done";
    this.#events.onComplete();
  }
}

/** The status code of a status line `HTTP/1.x SSS reason`. */
function statusOf(text: string, lineEnd: number): number {
  if (
    lineEnd < 12 ||
    !text.startsWith("HTTP/1.") ||
    (text.charCodeAt(7) !== 48 && text.charCodeAt(7) !== 49) ||
    text.charCodeAt(8) !== 32 ||
    (lineEnd > 12 && text.charCodeAt(12) !== 32)
  )
    throw new ResponseParseError(`bad status line '${text.slice(0, Math.min(lineEnd, 64))}'`);
  let status = 0;
  for (let i = 9; i < 12; i++) {
    const d = text.charCodeAt(i) - 48;
    if (d < 0 || d > 9) throw new ResponseParseError(`bad status code in '${text.slice(0, 64)}'`);
    status = status * 10 + d;
  }
  if (status < 100) throw new ResponseParseError(`status ${status} is below 100`);
  checkValue(text, 13, lineEnd);
  return status;
}

let lastKeepAlive = "";
let lastKeepAliveMs: number | undefined;

function keepAliveTimeout(value: string): number | undefined {
  // An upstream sends the same value every time: remember the last one.
  if (value !== lastKeepAlive) {
    const m = /(?:^|[,\s])timeout\s*=\s*(\d{1,6})/i.exec(value);
    lastKeepAlive = value;
    lastKeepAliveMs = m ? Number(m[1]) * 1000 : undefined;
  }
  return lastKeepAliveMs;
}
