/**
 * Follows a log file another process appends to, as `up --detach` follows its supervisor's log:
 * each call reads only the bytes written since the last one (never the whole file again) and
 * returns the complete lines among them, decoding UTF-8 across reads.
 */
import { closeSync, openSync, readSync } from "node:fs";
import { StringDecoder } from "node:string_decoder";

export class LogFollower {
  readonly #file: string;
  #offset: number;
  #decoder = new StringDecoder("utf8");
  #partial = "";

  /** Follows `file` from byte `offset` (its size before the writer started, to skip older runs). */
  constructor(file: string, offset: number) {
    this.#file = file;
    this.#offset = offset;
  }

  /**
   * The complete lines written since the last call. With `final`, also the last line without its
   * newline (the writer is gone and will not finish it).
   */
  lines(options: { final?: boolean } = {}): string[] {
    const fd = openSync(this.#file, "r");
    try {
      const chunk = Buffer.alloc(1 << 16);
      while (true) {
        const n = readSync(fd, chunk, 0, chunk.length, this.#offset);
        if (n === 0) break;
        this.#offset += n;
        this.#partial += this.#decoder.write(chunk.subarray(0, n));
      }
    } finally {
      closeSync(fd);
    }
    const lines = this.#partial.split("\n");
    this.#partial = lines.pop() ?? "";
    if (options.final) {
      const last = this.#partial + this.#decoder.end();
      this.#partial = "";
      if (last !== "") lines.push(last);
    }
    return lines;
  }
}
