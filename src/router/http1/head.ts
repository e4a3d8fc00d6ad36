/** A message head gathered across reads, up to the CRLF CRLF that ends it (both parsers use it). */

const CRLFCRLF = Buffer.from("\r\n\r\n");
const EMPTY = Buffer.alloc(0);

export class HeadBuffer {
  #pending: Buffer | undefined;
  #fresh = true;
  /** After {@link find}: the bytes searched (what was kept, then the new data). */
  buf: Buffer = EMPTY;
  /** After {@link find}: where the search began (bytes before it were searched on earlier reads). */
  from = 0;

  /** The bytes of a head begun on earlier reads, if any. */
  get pending(): Buffer | undefined {
    return this.#pending;
  }

  /** Looks for the end of the head in what was kept plus `data`: its index in `buf`, or -1. */
  find(data: Buffer): number {
    const pending = this.#pending;
    this.#fresh = pending === undefined;
    this.from = pending === undefined ? 0 : Math.max(0, pending.length - 3);
    this.buf = pending === undefined ? data : Buffer.concat([pending, data]);
    const end = this.buf.indexOf(CRLFCRLF, this.from);
    if (end >= 0) this.#pending = undefined;
    return end;
  }

  /** Keeps what {@link find} searched for the next read: the head is not complete yet. */
  keep(): void {
    // A fresh read's buffer may be reused by whoever passed it: copy it.
    this.#pending = this.#fresh ? Buffer.from(this.buf) : this.buf;
  }

  clear(): void {
    this.#pending = undefined;
  }
}
