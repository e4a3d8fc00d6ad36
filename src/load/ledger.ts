/**
 * The ledger of a load run: one JSON line per write the client saw acknowledged, appended and
 * fsync'd in batches (every 200 ms or 500 lines), so a crash loses at most the last batch and never
 * corrupts earlier lines. The reader tolerates a torn last line (reported, ignored) and reports
 * malformed lines elsewhere instead of failing, so an audit always checks every intact entry.
 */
import { createReadStream } from "node:fs";
import { type FileHandle, open, stat } from "node:fs/promises";
import { dirname } from "node:path";
import { RingfenceError } from "../lib/errors.js";

/** One acknowledged write. */
export interface LedgerEntry {
  /** The user id written (`w-<runId>-<seq>`), unique across runs. */
  readonly id: string;
  readonly tenant: string;
  /** The cell that acknowledged it (`x-ringfence-cell`, else the tenant's cell from the bucket table). */
  readonly cell: string;
  readonly name: string;
  readonly email: string;
  /** The commit LSN the service returned (`x-ringfence-commit-lsn`), e.g. `0/3000A28`. */
  readonly lsn: string;
  /** The region of the router the write went through. */
  readonly router: string;
  /** `x-ringfence-served-by`: the instance slot that answered, or null when absent. */
  readonly servedBy: string | null;
  /** When the acknowledgement arrived (ISO 8601). */
  readonly ackAt: string;
}

export interface LedgerWriterOptions {
  /** Longest time an acknowledged write waits in memory before it is written and fsync'd. Default 200. */
  readonly flushIntervalMs?: number;
  /** A batch this large is written at once. Default 500. */
  readonly maxBatchLines?: number;
}

/** Appends entries to a ledger file with batched fsync. Open with {@link LedgerWriter.open}. */
export class LedgerWriter {
  readonly file: string;
  #handle: FileHandle;
  #buffer: string[] = [];
  #chain: Promise<void> = Promise.resolve();
  #timer: NodeJS.Timeout;
  #maxBatchLines: number;
  #durable = 0;
  #error: Error | undefined;
  #closed = false;

  private constructor(file: string, handle: FileHandle, options: LedgerWriterOptions) {
    this.file = file;
    this.#handle = handle;
    this.#maxBatchLines = options.maxBatchLines ?? 500;
    this.#timer = setInterval(() => void this.flush(), options.flushIntervalMs ?? 200);
    this.#timer.unref();
  }

  /**
   * Opens `file` for appending (creating it). When an earlier run left a torn last line, a newline is
   * written first so that the torn text stays one malformed line instead of spoiling the next entry.
   */
  static async open(file: string, options: LedgerWriterOptions = {}): Promise<LedgerWriter> {
    let handle: FileHandle | undefined;
    try {
      const before = await stat(file).catch(() => undefined);
      handle = await open(file, "a");
      if (before && before.size > 0) {
        const last = Buffer.alloc(1);
        const reader = await open(file, "r");
        try {
          await reader.read(last, 0, 1, before.size - 1);
        } finally {
          await reader.close();
        }
        if (last[0] !== 0x0a) await handle.write("\n");
      } else {
        await syncDirectory(dirname(file));
      }
      return new LedgerWriter(file, handle, options);
    } catch (err) {
      await handle?.close().catch(() => {});
      throw new RingfenceError(
        "RINGFENCE_USAGE",
        `--ledger ${file}: cannot open it for appending (${(err as Error).message}); pass a writable path`,
        { cause: err },
      );
    }
  }

  /** Entries written and fsync'd so far. */
  get durable(): number {
    return this.#durable;
  }

  /** Entries waiting for the next batch. */
  get buffered(): number {
    return this.#buffer.length;
  }

  /** Queues one entry; the batch is written when full or on the next tick of the flush interval. */
  append(entry: LedgerEntry): void {
    if (this.#closed) throw new Error("the ledger is closed");
    this.#buffer.push(`${JSON.stringify(entry)}\n`);
    if (this.#buffer.length >= this.#maxBatchLines) void this.flush();
  }

  /** Writes and fsyncs what is buffered; resolves once it is durable. Never rejects (see `close`). */
  flush(): Promise<void> {
    const lines = this.#buffer;
    this.#buffer = [];
    if (lines.length > 0) this.#chain = this.#chain.then(() => this.#write(lines));
    return this.#chain;
  }

  async #write(lines: readonly string[]): Promise<void> {
    if (this.#error) return;
    try {
      await this.#handle.write(lines.join(""));
      await this.#handle.sync();
      this.#durable += lines.length;
    } catch (err) {
      this.#error = err as Error;
    }
  }

  /** Flushes, fsyncs and closes; throws when any batch could not be written. */
  async close(): Promise<void> {
    if (this.#closed) return;
    clearInterval(this.#timer);
    await this.flush();
    this.#closed = true;
    await this.#handle.close();
    if (this.#error) {
      throw new RingfenceError(
        "RINGFENCE_USAGE",
        `--ledger ${this.file}: writing failed (${this.#error.message}); acknowledged writes after entry ${this.#durable} are not in the ledger`,
        { cause: this.#error },
      );
    }
  }
}

async function syncDirectory(dir: string): Promise<void> {
  // Makes a new file's directory entry durable too; not every platform lets a directory be fsync'd.
  const handle = await open(dir, "r").catch(() => undefined);
  if (!handle) return;
  await handle.sync().catch(() => {});
  await handle.close();
}

/** What reading a ledger found. */
export interface LedgerRead {
  readonly entries: LedgerEntry[];
  /** Complete lines that are not entries (1-based line numbers), e.g. one torn by an earlier crash. */
  readonly malformed: { readonly line: number; readonly reason: string }[];
  /** The last line when it has no newline and is not a whole entry: what a crash mid-batch leaves. */
  readonly tornTail: { readonly line: number; readonly bytes: number } | undefined;
}

const STRING_FIELDS = ["id", "tenant", "cell", "name", "email", "lsn", "router", "ackAt"] as const;

/** Parses one ledger line, or says why it is not an entry. */
export function parseLedgerLine(text: string): LedgerEntry | string {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return "not JSON";
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) return "not a JSON object";
  const record = value as Record<string, unknown>;
  for (const field of STRING_FIELDS) {
    if (typeof record[field] !== "string" || record[field] === "") return `${field} is missing`;
  }
  if (record.servedBy !== null && typeof record.servedBy !== "string") return "servedBy is not a string";
  return record as unknown as LedgerEntry;
}

/** Incremental ledger parser: feed it text in any chunks, then `end()`. */
export class LedgerParser {
  #partial = "";
  #line = 0;
  #entries: LedgerEntry[] = [];
  #malformed: { line: number; reason: string }[] = [];

  push(chunk: string): void {
    const text = this.#partial + chunk;
    let from = 0;
    for (let nl = text.indexOf("\n", from); nl !== -1; nl = text.indexOf("\n", from)) {
      this.#take(text.slice(from, nl));
      from = nl + 1;
    }
    this.#partial = text.slice(from);
  }

  end(): LedgerRead {
    let tornTail: LedgerRead["tornTail"];
    if (this.#partial.trim() !== "") {
      // Only the newline missing: the entry itself is whole (a JSON object cannot end early and parse).
      const parsed = parseLedgerLine(this.#partial);
      this.#line++;
      if (typeof parsed === "string") {
        tornTail = { line: this.#line, bytes: Buffer.byteLength(this.#partial) };
      } else {
        this.#entries.push(parsed);
      }
    }
    this.#partial = "";
    return { entries: this.#entries, malformed: this.#malformed, tornTail };
  }

  #take(text: string): void {
    this.#line++;
    if (text.trim() === "") return;
    const parsed = parseLedgerLine(text);
    if (typeof parsed === "string") this.#malformed.push({ line: this.#line, reason: parsed });
    else this.#entries.push(parsed);
  }
}

/** Parses a whole ledger held in memory. */
export function parseLedger(text: string): LedgerRead {
  const parser = new LedgerParser();
  parser.push(text);
  return parser.end();
}

/** Reads a ledger file, streaming. Throws RINGFENCE_USAGE when it cannot be read. */
export async function readLedger(file: string): Promise<LedgerRead> {
  const parser = new LedgerParser();
  try {
    for await (const chunk of createReadStream(file, { encoding: "utf8" })) parser.push(chunk as string);
  } catch (err) {
    throw new RingfenceError(
      "RINGFENCE_USAGE",
      `--ledger ${file}: cannot read it (${(err as Error).message}); pass the file \`ringfence load\` wrote`,
      { cause: err },
    );
  }
  return parser.end();
}
