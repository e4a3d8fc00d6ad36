/**
 * The body of an HTTP/1.1 message framed by Content-Length or by the chunked transfer coding
 * (RFC 9112 §6, §7.1), read incrementally: chunks are passed on as they come, without copying body
 * bytes, and the end of the body is reported once. Trailers are checked and dropped.
 */
import { checkHeaders, chunkSizeOf, Http1SyntaxError } from "./syntax.js";

const CRLFCRLF = Buffer.from("\r\n\r\n");
const CR = 13;
const LF = 10;
const MAX_CHUNK_LINE = 1024;
const MAX_TRAILER_BYTES = 16 * 1024;
const EMPTY = Buffer.alloc(0);

type State = "length" | "chunk-size" | "chunk-data" | "chunk-end" | "trailers" | "done";

export class BodyFraming {
  #state: State = "done";
  #remaining = 0;
  #pending: Buffer | undefined;
  readonly #onBody: (chunk: Buffer) => void;
  readonly #onComplete: () => void;

  constructor(onBody: (chunk: Buffer) => void, onComplete: () => void) {
    this.#onBody = onBody;
    this.#onComplete = onComplete;
  }

  /** A body of `n` bytes follows (none when 0: the end is reported at once). */
  length(n: number): void {
    this.#pending = undefined;
    this.#remaining = n;
    this.#state = "length";
    if (n === 0) this.#complete();
  }

  /** A chunked body follows. */
  chunked(): void {
    this.#pending = undefined;
    this.#remaining = 0;
    this.#state = "chunk-size";
  }

  /** True once the whole body was read. */
  get done(): boolean {
    return this.#state === "done";
  }

  /** Reads body bytes from `data`; returns the bytes after the body's end (empty while it goes on). */
  feed(chunk: Buffer): Buffer {
    let data = chunk;
    while (data.length > 0) {
      switch (this.#state) {
        case "length":
        case "chunk-data": {
          const n = Math.min(this.#remaining, data.length);
          const part = n === data.length ? data : data.subarray(0, n);
          this.#remaining -= n;
          data = data.subarray(n);
          this.#onBody(part);
          if (this.#remaining === 0) {
            if (this.#state === "length") this.#complete();
            else this.#state = "chunk-end";
          }
          break;
        }
        case "chunk-size":
        case "chunk-end":
        case "trailers":
          data = this.#chunkFraming(data);
          break;
        case "done":
          return data;
      }
    }
    return EMPTY;
  }

  /** Chunk size lines, the CRLF after chunk data, and trailers; returns the bytes after what it used. */
  #chunkFraming(data: Buffer): Buffer {
    const buf = this.#pending === undefined ? data : Buffer.concat([this.#pending, data]);
    this.#pending = undefined;
    if (this.#state === "chunk-end") {
      if (buf.length < 2) {
        this.#pending = Buffer.from(buf);
        return EMPTY;
      }
      if (buf[0] !== CR || buf[1] !== LF) throw new Http1SyntaxError("chunk data not followed by CRLF");
      this.#state = "chunk-size";
      return buf.subarray(2);
    }
    if (this.#state === "chunk-size") {
      const end = buf.indexOf("\r\n");
      // Bounded whether or not the line's CRLF came in the same piece.
      if (end > MAX_CHUNK_LINE || (end < 0 && buf.length > MAX_CHUNK_LINE))
        throw new Http1SyntaxError("chunk size line too long");
      if (end < 0) {
        this.#pending = Buffer.from(buf);
        return EMPTY;
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
    if (end > MAX_TRAILER_BYTES) throw new Http1SyntaxError("trailers too long");
    if (end < 0) {
      if (buf.length > MAX_TRAILER_BYTES) throw new Http1SyntaxError("trailers too long");
      this.#pending = Buffer.from(buf);
      return EMPTY;
    }
    checkHeaders(`\r\n${buf.toString("latin1", 0, end)}`, 0);
    this.#complete();
    return buf.subarray(end + 4);
  }

  #complete(): void {
    this.#state = "done";
    this.#onComplete();
  }
}
