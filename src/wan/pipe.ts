import type { Socket } from "node:net";
import { performance } from "node:perf_hooks";
import type { LinkDirection, LinkSession } from "./link.js";

/** A chunk waiting for its due time; `chunk` undefined stands for end of stream (a FIN). */
interface Pending {
  dueMs: number;
  chunk: Buffer | undefined;
}

/** What a `DelayedPipe` needs: where bytes come from, the link session, and its bounds. */
export interface DelayedPipeOptions {
  /** The socket whose bytes this pipe carries. */
  source: Socket;
  /** The connection's session on its link: delays, partition state, byte counters. */
  session: LinkSession;
  /** Which way the bytes travel, for the link's byte counters. */
  direction: LinkDirection;
  /** Reading from `source` pauses while the queue holds at least this many bytes. */
  maxQueuedBytes: number;
  /** Called after each new chunk with the bytes this pipe now holds (`bufferedBytes`). */
  onBuffered?: (bytes: number) => void;
}

/**
 * One direction of one proxied connection. Each chunk read from the source waits in a FIFO queue
 * until its due time (arrival + the link's sampled delay, never earlier than the chunk before it, so
 * jitter never reorders) and is then written to the target; one timer serves the whole queue. Reading
 * pauses while the target wants a 'drain' or the queue is full, so memory stays bounded.
 */
export class DelayedPipe {
  readonly #source: Socket;
  readonly #session: LinkSession;
  readonly #direction: LinkDirection;
  readonly #maxQueuedBytes: number;
  readonly #onBuffered: ((bytes: number) => void) | undefined;
  readonly #queue: Pending[] = [];
  #target: Socket | undefined;
  #queuedBytes = 0;
  #lastDueMs = 0;
  #timer: NodeJS.Timeout | undefined;
  #awaitingDrain = false;
  #paused = false;
  #disposed = false;

  /** Starts reading `options.source` at once; chunks wait in the queue until a target is set. */
  constructor(options: DelayedPipeOptions) {
    this.#source = options.source;
    this.#session = options.session;
    this.#direction = options.direction;
    this.#maxQueuedBytes = options.maxQueuedBytes;
    this.#onBuffered = options.onBuffered;
    this.#source.on("data", this.#onData);
    this.#source.on("end", this.#onEnd);
  }

  /** Bytes this pipe holds: queued chunks plus what it wrote that the target has not flushed yet. */
  get bufferedBytes(): number {
    return this.#queuedBytes + (this.#target?.writableLength ?? 0);
  }

  /** Sets the socket that receives the bytes and delivers whatever is already due. */
  setTarget(target: Socket): void {
    this.#target = target;
    this.#deliver();
  }

  /** Stops the pipe: drops the queue, cancels its timer and stops listening to the source. */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#queue.length = 0;
    this.#queuedBytes = 0;
    this.#source.off("data", this.#onData);
    this.#source.off("end", this.#onEnd);
    this.#target?.off("drain", this.#onDrain);
  }

  readonly #onData = (chunk: Buffer): void => {
    if (this.#session.partitioned) {
      this.#session.markLost();
      return;
    }
    this.#enqueue(chunk);
    this.#onBuffered?.(this.bufferedBytes);
  };

  readonly #onEnd = (): void => {
    if (this.#session.partitioned) {
      this.#session.markLost();
      return;
    }
    this.#enqueue(undefined);
  };

  readonly #onDrain = (): void => {
    this.#awaitingDrain = false;
    this.#deliver();
  };

  #enqueue(chunk: Buffer | undefined): void {
    if (this.#disposed) return;
    const dueMs = Math.max(performance.now() + this.#session.sampleDelayMs(), this.#lastDueMs);
    this.#lastDueMs = dueMs;
    this.#queue.push({ dueMs, chunk });
    this.#queuedBytes += chunk?.length ?? 0;
    // A non-empty queue already has its timer (or waits for a target or a drain).
    if (this.#queue.length === 1) this.#deliver();
    else this.#updateFlow();
  }

  #deliver(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    const target = this.#target;
    if (this.#disposed || target === undefined) {
      this.#updateFlow();
      return;
    }
    const now = performance.now();
    while (!this.#awaitingDrain) {
      const head = this.#queue[0];
      if (head === undefined) break;
      if (head.dueMs > now) {
        this.#timer = setTimeout(
          () => {
            this.#timer = undefined;
            this.#deliver();
          },
          Math.ceil(head.dueMs - now),
        );
        break;
      }
      this.#queue.shift();
      const size = head.chunk?.length ?? 0;
      this.#queuedBytes -= size;
      if (this.#session.partitioned) {
        // In flight when the partition began: lost like everything else on the link.
        this.#session.markLost();
        continue;
      }
      // A target being torn down drops the rest; the connection closes itself.
      if (target.destroyed || !target.writable) continue;
      if (head.chunk === undefined) {
        target.end();
        continue;
      }
      this.#session.recordDelivered(this.#direction, size);
      if (!target.write(head.chunk)) {
        this.#awaitingDrain = true;
        target.once("drain", this.#onDrain);
      }
    }
    this.#updateFlow();
  }

  #updateFlow(): void {
    if (this.#disposed) return;
    const full = this.#awaitingDrain || this.#queuedBytes >= this.#maxQueuedBytes;
    if (full && !this.#paused) {
      this.#paused = true;
      this.#source.pause();
    } else if (!full && this.#paused) {
      this.#paused = false;
      this.#source.resume();
    }
  }
}
