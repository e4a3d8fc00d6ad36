/**
 * An incremental, strict HTTP/1.1 request parser for the router's client connections (RFC 9112).
 * It is fed the socket's chunks as they come and reports the head, the body (chunked transfer
 * coding removed) and the end of the request through callbacks, without copying body bytes. After a
 * complete request it stops and hands back the bytes that followed (a pipelined request), which wait
 * until the response has been written.
 *
 * What could be a request smuggling attempt is refused rather than guessed at: Transfer-Encoding
 * with Content-Length, differing Content-Lengths, a transfer coding other than `chunked`, chunked
 * HTTP/1.0 requests, obsolete line folding, bare CR or LF, whitespace before a header's colon, NUL
 * and other control characters, more than one Host (or none in HTTP/1.1). Heads over the size limit
 * or with too many fields get 431.
 */
import { BodyFraming } from "../http1/body.js";
import { HeadBuffer } from "../http1/head.js";
import { contentLengthOf, Http1SyntaxError, headerLine, isToken } from "../http1/syntax.js";

/** Why a request could not be parsed: the status to answer with, then the connection closes. */
export class RequestParseError extends Error {
  readonly status: 400 | 417 | 431 | 501 | 505;
  constructor(status: RequestParseError["status"], message: string) {
    super(message);
    this.name = "RequestParseError";
    this.status = status;
  }
}

/** The head of a request. */
export interface RequestHead {
  readonly method: string;
  /** The request target in origin form (`/path?query`; an absolute-form target is reduced to it), or `*`. */
  readonly target: string;
  readonly http10: boolean;
  /** Header names and values in order, flat (`[name, value, name, value, …]`), as received. */
  readonly headers: string[];
  /** Whether the client keeps the connection open for another request. */
  readonly keepAlive: boolean;
  /** The client waits for `100 Continue` before it sends the body. */
  readonly expectContinue: boolean;
  /** The declared body length; -1 when the body is chunked or there is none. */
  readonly contentLength: number;
  readonly chunked: boolean;
}

/** What the parser reports; called synchronously from {@link RequestParser.feed}. */
export interface RequestEvents {
  onHead(head: RequestHead): void;
  onBody(chunk: Buffer): void;
  onComplete(): void;
}

export interface RequestLimits {
  /** The largest head (request line and headers) accepted; 431 beyond. Default 16 KiB. */
  readonly maxHeadBytes?: number;
  /** The most header fields accepted; 431 beyond. Default 256. */
  readonly maxHeaders?: number;
}

const CR = 13;
const LF = 10;

type State = "head" | "body" | "done";

export class RequestParser {
  readonly #events: RequestEvents;
  readonly #body: BodyFraming;
  readonly #maxHeadBytes: number;
  readonly #maxHeaders: number;
  #state: State = "head";
  readonly #headBuffer = new HeadBuffer();

  constructor(events: RequestEvents, limits: RequestLimits = {}) {
    this.#events = events;
    this.#maxHeadBytes = limits.maxHeadBytes ?? 16 * 1024;
    this.#maxHeaders = limits.maxHeaders ?? 256;
    this.#body = new BodyFraming(events.onBody, () => this.#complete());
  }

  /** True once a whole request was read (until {@link reset}). */
  get done(): boolean {
    return this.#state === "done";
  }

  /** True while part of a head has arrived but not all of it. */
  get inHead(): boolean {
    return this.#state === "head" && this.#headBuffer.pending !== undefined;
  }

  /** True while the body is being read. */
  get inBody(): boolean {
    return this.#state === "body";
  }

  /** Readies the parser for the next request on the connection. */
  reset(): void {
    this.#state = "head";
    this.#headBuffer.clear();
  }

  /**
   * Parses the next bytes. Returns undefined while the request is incomplete; once it is complete,
   * the bytes that came after it (empty when none). Throws {@link RequestParseError}.
   */
  feed(chunk: Buffer): Buffer | undefined {
    try {
      let data = chunk;
      while (data.length > 0 || this.#state === "done") {
        if (this.#state === "done") return data;
        if (this.#state === "head") {
          const rest = this.#head(data);
          if (rest === undefined) return undefined;
          data = rest;
        } else data = this.#body.feed(data);
      }
      return undefined;
    } catch (err) {
      if (err instanceof Http1SyntaxError) throw new RequestParseError(400, err.message);
      throw err;
    }
  }

  /** Reads the head from the start of `data` (plus what was pending); returns the bytes after it. */
  #head(input: Buffer): Buffer | undefined {
    let data = input;
    // The CR of an empty line came alone in the last piece and its LF starts this one: skip it too.
    const pending = this.#headBuffer.pending;
    if (pending?.length === 1 && pending[0] === CR && data[0] === LF) {
      this.#headBuffer.clear();
      data = data.subarray(1);
    }
    if (this.#headBuffer.pending === undefined) {
      // RFC 9112 §2.2: empty lines before a request line are ignored.
      let skip = 0;
      while (skip + 1 < data.length && data[skip] === CR && data[skip + 1] === LF) skip += 2;
      if (skip > 0) data = data.subarray(skip);
      if (data.length === 0) return undefined;
    }
    const gathered = this.#headBuffer;
    const end = gathered.find(data);
    const buf = gathered.buf;
    if (end < 0) {
      if (buf.length > this.#maxHeadBytes) this.#tooLarge();
      // A head whose lines end in a bare LF would otherwise wait for a CRLF CRLF that never comes.
      if (buf.indexOf("\n\n", gathered.from) >= 0)
        throw new RequestParseError(400, "header lines must end in CRLF");
      gathered.keep();
      return undefined;
    }
    if (end + 4 > this.#maxHeadBytes) this.#tooLarge();
    const head = this.#parseHead(buf.toString("latin1", 0, end));
    if (head.chunked) {
      this.#state = "body";
      this.#body.chunked();
    } else if (head.contentLength > 0) {
      this.#state = "body";
      this.#body.length(head.contentLength);
    } else this.#state = "done";
    this.#events.onHead(head);
    if (this.#state === "done") this.#events.onComplete();
    return buf.subarray(end + 4);
  }

  #tooLarge(): never {
    throw new RequestParseError(431, `the request head is over ${this.#maxHeadBytes} bytes`);
  }

  #parseHead(text: string): RequestHead {
    let lineEnd = text.indexOf("\r\n");
    if (lineEnd < 0) lineEnd = text.length;
    const sp1 = text.indexOf(" ");
    const sp2 = sp1 < 0 ? -1 : text.indexOf(" ", sp1 + 1);
    if (sp1 <= 0 || sp2 < 0 || sp2 >= lineEnd || lineEnd - sp2 !== 9)
      throw new RequestParseError(
        400,
        `bad request line '${printable(text.slice(0, Math.min(lineEnd, 64)))}'`,
      );
    if (!isToken(text, 0, sp1)) throw new RequestParseError(400, "bad method");
    const method = text.slice(0, sp1);
    const http10 = versionOf(text, sp2 + 1);
    const target = targetOf(text, sp1 + 1, sp2, method);
    const headers: string[] = [];
    let contentLength = -1;
    let transferEncoding: string | undefined;
    let connection: string | undefined;
    let hosts = 0;
    let expect: string | undefined;
    let at = lineEnd + 2;
    while (at < text.length) {
      let next = text.indexOf("\r\n", at);
      if (next < 0) next = text.length;
      if (headers.length >= this.#maxHeaders * 2)
        throw new RequestParseError(431, `more than ${this.#maxHeaders} header fields`);
      const [name, value] = headerLine(text, at, next);
      headers.push(name, value);
      at = next + 2;
      switch (name.length) {
        case 4:
          if (name.toLowerCase() === "host") hosts++;
          break;
        case 6:
          if (name.toLowerCase() === "expect") expect = value.toLowerCase();
          break;
        case 10:
          if (name.toLowerCase() === "connection")
            connection = connection === undefined ? value : `${connection},${value}`;
          break;
        case 14:
          if (name.toLowerCase() === "content-length") {
            const n = contentLengthOf(value);
            if (contentLength !== -1 && contentLength !== n)
              throw new RequestParseError(400, "two different Content-Length headers");
            contentLength = n;
          }
          break;
        case 17:
          if (name.toLowerCase() === "transfer-encoding")
            transferEncoding = transferEncoding === undefined ? value : `${transferEncoding},${value}`;
          break;
      }
    }
    if (hosts > 1) throw new RequestParseError(400, "more than one Host header");
    if (hosts === 0 && !http10) throw new RequestParseError(400, "an HTTP/1.1 request without a Host header");
    let chunked = false;
    if (transferEncoding !== undefined) {
      if (contentLength !== -1) throw new RequestParseError(400, "both Transfer-Encoding and Content-Length");
      if (http10) throw new RequestParseError(400, "Transfer-Encoding in an HTTP/1.0 request");
      if (transferEncoding.trim().toLowerCase() !== "chunked")
        throw new RequestParseError(
          501,
          `unsupported Transfer-Encoding '${printable(transferEncoding.slice(0, 64))}' (only chunked)`,
        );
      chunked = true;
    }
    let expectContinue = false;
    if (expect !== undefined) {
      if (expect !== "100-continue")
        throw new RequestParseError(417, `unsupported expectation '${printable(expect.slice(0, 64))}'`);
      expectContinue = !http10;
    }
    return {
      method,
      target,
      http10,
      headers,
      keepAlive: keepAliveOf(connection, http10),
      expectContinue,
      contentLength: chunked ? -1 : contentLength,
      chunked,
    };
  }

  #complete(): void {
    this.#state = "done";
    this.#events.onComplete();
  }
}

/** `HTTP/1.1` or `HTTP/1.0` at `at` (true for 1.0); 505 for another version, 400 for garbage. */
function versionOf(text: string, at: number): boolean {
  if (text.startsWith("HTTP/1.1", at)) return false;
  if (text.startsWith("HTTP/1.0", at)) return true;
  if (/^HTTP\/\d\.\d$/.test(text.slice(at, at + 8)))
    throw new RequestParseError(505, `HTTP version ${text.slice(at + 5, at + 8)} is not supported`);
  throw new RequestParseError(400, "bad HTTP version in the request line");
}

/** The request target in origin form. */
function targetOf(text: string, from: number, to: number, method: string): string {
  for (let i = from; i < to; i++) {
    const c = text.charCodeAt(i);
    if (c <= 32 || c >= 127)
      throw new RequestParseError(400, "a character not allowed in the request target");
  }
  // Whatever its target: a CONNECT passed on would ask the upstream for a tunnel.
  if (method === "CONNECT") throw new RequestParseError(501, "CONNECT is not supported");
  const first = text.charCodeAt(from);
  if (first === 47 /* / */) return text.slice(from, to);
  if (to - from === 1 && first === 42 /* * */ && method === "OPTIONS") return "*";
  const target = text.slice(from, to);
  const m = /^https?:\/\/[^/?#]+(.*)$/i.exec(target);
  if (m) {
    const rest = m[1] as string;
    return rest.startsWith("/") ? rest : `/${rest}`;
  }
  throw new RequestParseError(400, `bad request target '${printable(target.slice(0, 64))}'`);
}

/** HTTP/1.1 keeps the connection unless `close` is listed; HTTP/1.0 only when `keep-alive` is. */
function keepAliveOf(connection: string | undefined, http10: boolean): boolean {
  if (connection === undefined) return !http10;
  const v = connection.toLowerCase();
  if (v === "keep-alive") return true;
  if (v === "close") return false;
  let close = false;
  let keep = false;
  for (const t of v.split(",")) {
    const token = t.trim();
    if (token === "close") close = true;
    else if (token === "keep-alive") keep = true;
  }
  return close ? false : http10 ? keep : true;
}

/** Text for an error message: control characters shown as `?`. */
function printable(text: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: replacing them is the point
  return text.replace(/[\x00-\x1f\x7f-\xff]/g, "?");
}
