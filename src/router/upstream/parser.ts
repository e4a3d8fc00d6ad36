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
const MAX_CHUNK_LINE = 1024;
const MAX_TRAILER_BYTES = 16 * 1024;

const CRLFCRLF = Buffer.from("\r\n\r\n");
const CR = 13;
const LF = 10;

// 1 for the characters of an HTTP token (a header name), per RFC 9110 §5.6.2.
const TOKEN = new Uint8Array(128);
for (const c of "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
  TOKEN[c.charCodeAt(0)] = 1;

type State =
  | "idle"
  | "head"
  | "length"
  | "chunk-size"
  | "chunk-data"
  | "chunk-end"
  | "trailers"
  | "close"
  | "done";

export class ResponseParser {
  readonly #events: ResponseEvents;
  #state: State = "idle";
  #noBody = false;
  #pending: Buffer | undefined;
  #remaining = 0;
  #keepAlive = false;
  #extra = false;

  constructor(events: ResponseEvents) {
    this.#events = events;
  }

  /** Readies the parser for the response to one request (`HEAD` answers carry no body). */
  start(method: string): void {
    this.#state = "head";
    this.#noBody = method === "HEAD";
    this.#pending = undefined;
    this.#remaining = 0;
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
    let data = chunk;
    while (data.length > 0) {
      switch (this.#state) {
        case "head": {
          const rest = this.#head(data);
          if (rest === undefined) return;
          data = rest;
          break;
        }
        case "length": {
          const n = Math.min(this.#remaining, data.length);
          const part = n === data.length ? data : data.subarray(0, n);
          this.#remaining -= n;
          data = data.subarray(n);
          this.#events.onBody(part);
          if (this.#remaining === 0) this.#complete();
          break;
        }
        case "close":
          this.#events.onBody(data);
          return;
        case "chunk-size":
        case "chunk-end":
        case "trailers":
          data = this.#chunkFraming(data);
          break;
        case "chunk-data": {
          const n = Math.min(this.#remaining, data.length);
          const part = n === data.length ? data : data.subarray(0, n);
          this.#remaining -= n;
          data = data.subarray(n);
          this.#events.onBody(part);
          if (this.#remaining === 0) this.#state = "chunk-end";
          break;
        }
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
    let buf = data;
    let from = 0;
    if (this.#pending !== undefined) {
      from = Math.max(0, this.#pending.length - 3);
      buf = Buffer.concat([this.#pending, data]);
    }
    const end = buf.indexOf(CRLFCRLF, from);
    if (end < 0) {
      if (buf.length > MAX_HEAD_BYTES) throw new ResponseParseError(`head over ${MAX_HEAD_BYTES} bytes`);
      this.#pending = buf === data ? Buffer.from(data) : buf;
      return undefined;
    }
    if (end > MAX_HEAD_BYTES) throw new ResponseParseError(`head over ${MAX_HEAD_BYTES} bytes`);
    this.#pending = undefined;
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
    else if (chunked) this.#state = "chunk-size";
    else if (contentLength >= 0) {
      this.#remaining = contentLength;
      this.#state = contentLength === 0 ? "done" : "length";
    } else {
      this.#state = "close";
      this.#keepAlive = false;
    }
    this.#events.onHead({ status, headers, keepAlive: this.#keepAlive, keepAliveTimeoutMs });
    if (this.#state === "done") this.#events.onComplete();
    return false;
  }

  /** Chunk size lines, the CRLF after chunk data, and trailers; returns the bytes after what it used. */
  #chunkFraming(data: Buffer): Buffer {
    const buf = this.#pending === undefined ? data : Buffer.concat([this.#pending, data]);
    this.#pending = undefined;
    if (this.#state === "chunk-end") {
      if (buf.length < 2) {
        this.#pending = Buffer.from(buf);
        return buf.subarray(buf.length);
      }
      if (buf[0] !== CR || buf[1] !== LF) throw new ResponseParseError("chunk data not followed by CRLF");
      this.#state = "chunk-size";
      return buf.subarray(2);
    }
    if (this.#state === "chunk-size") {
      const end = buf.indexOf("\r\n");
      // Bounded whether or not the line's CRLF came in the same piece.
      if (end > MAX_CHUNK_LINE || (end < 0 && buf.length > MAX_CHUNK_LINE))
        throw new ResponseParseError("chunk size line too long");
      if (end < 0) {
        this.#pending = Buffer.from(buf);
        return buf.subarray(buf.length);
      }
      const size = chunkSizeOf(buf.toString("latin1", 0, end));
      if (size === 0) this.#state = "trailers";
      else {
        this.#remaining = size;
        this.#state = "chunk-data";
      }
      return buf.subarray(end + 2);
    }
    // Trailers: header lines until an empty one. They are read and dropped (nothing asked for them).
    if (buf.length >= 2 && buf[0] === CR && buf[1] === LF) {
      this.#complete();
      return buf.subarray(2);
    }
    const end = buf.indexOf(CRLFCRLF);
    if (end > MAX_TRAILER_BYTES) throw new ResponseParseError("trailers too long");
    if (end < 0) {
      if (buf.length > MAX_TRAILER_BYTES) throw new ResponseParseError("trailers too long");
      this.#pending = Buffer.from(buf);
      return buf.subarray(buf.length);
    }
    const text = buf.toString("latin1", 0, end);
    checkHeaders(`\r\n${text}`, 0);
    this.#complete();
    return buf.subarray(end + 4);
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

/** Checks every header line of `text` after `lineEnd` (used for interim heads and trailers). */
function checkHeaders(text: string, lineEnd: number): void {
  let at = lineEnd + 2;
  while (at < text.length) {
    let next = text.indexOf("\r\n", at);
    if (next < 0) next = text.length;
    headerLine(text, at, next);
    at = next + 2;
  }
}

/** One header line `name: value` in `text[start, end)`: its name and its value without surrounding spaces. */
function headerLine(text: string, start: number, end: number): [string, string] {
  const colon = text.indexOf(":", start);
  if (colon < 0 || colon >= end) {
    const first = text.charCodeAt(start);
    throw new ResponseParseError(
      first === 32 || first === 9 ? "obsolete line folding in a header" : "a header line without a colon",
    );
  }
  if (colon === start) throw new ResponseParseError("a header with an empty name");
  for (let i = start; i < colon; i++) {
    const c = text.charCodeAt(i);
    if (c > 127 || TOKEN[c] !== 1) throw new ResponseParseError("a header name with a character not allowed");
  }
  let from = colon + 1;
  let to = end;
  while (from < to && isSpace(text.charCodeAt(from))) from++;
  while (to > from && isSpace(text.charCodeAt(to - 1))) to--;
  checkValue(text, from, to);
  return [text.slice(start, colon), text.slice(from, to)];
}

function isSpace(c: number): boolean {
  return c === 32 || c === 9;
}

/** Field values may hold visible characters, spaces, tabs and obs-text; never CR, LF, NUL or other controls. */
function checkValue(text: string, from: number, to: number): void {
  for (let i = from; i < to; i++) {
    const c = text.charCodeAt(i);
    if ((c < 32 && c !== 9) || c === 127)
      throw new ResponseParseError("a control character (CR, LF, NUL, …) in a header");
  }
}

function contentLengthOf(value: string): number {
  if (value.length <= 15) {
    let n = 0;
    for (let i = 0; i < value.length; i++) {
      const d = value.charCodeAt(i) - 48;
      if (d < 0 || d > 9) return contentLengthList(value);
      n = n * 10 + d;
    }
    if (value.length > 0) return n;
  }
  return contentLengthList(value);
}

function contentLengthList(value: string): number {
  // A list of identical values ("5, 5") is allowed by RFC 9110 §8.6; anything else is not a length.
  const parts = value.split(",");
  let n = -1;
  for (const part of parts) {
    const p = part.trim();
    if (!/^[0-9]{1,15}$/.test(p)) throw new ResponseParseError(`bad Content-Length '${value}'`);
    const v = Number(p);
    if (n !== -1 && v !== n) throw new ResponseParseError(`bad Content-Length '${value}'`);
    n = v;
  }
  return n;
}

function chunkSizeOf(line: string): number {
  const semi = line.indexOf(";");
  // Only spaces and tabs may follow the size: trimEnd() would also take a bare CR or LF.
  const hex = (semi < 0 ? line : line.slice(0, semi)).replace(/[ \t]+$/, "");
  if (!/^[0-9a-fA-F]{1,12}$/.test(hex)) throw new ResponseParseError(`bad chunk size '${line.slice(0, 32)}'`);
  if (semi >= 0) checkValue(line, semi, line.length);
  return Number.parseInt(hex, 16);
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
