/** Which way bytes travel on a proxied connection: `forward` from the side that opened it to the target. */
export type LinkDirection = "forward" | "backward";

/** A JSON-able snapshot of one link, as shown by the dashboard and chaos reports. */
export interface LinkState {
  /** The unordered region pair, e.g. `eu-west~us-east` (names sorted). */
  name: string;
  /** One-way latency added to every chunk and to connection setup. */
  latencyMs: number;
  /** Upper bound of the uniform random extra delay added to each chunk. */
  jitterMs: number;
  /** Probability in [0, 1] that a chunk is delayed by one retransmission timeout. */
  loss: number;
  /** The extra delay a "lost" chunk pays. */
  retransmitTimeoutMs: number;
  /** Whether the link currently drops everything. */
  partitioned: boolean;
  /** Live proxied connections using this link, across all forwards. */
  connections: number;
  /** Bytes delivered through the link in each direction since it was created. */
  bytes: { forward: number; backward: number };
}

/** Why `onChange` fired. Byte counters change on every chunk and do not fire it; poll `state()` for them. */
export type LinkChangeReason = "latency" | "jitter" | "loss" | "partition" | "heal" | "connections";

/** What an `onChange` listener receives: the reason and the state right after the change. */
export interface LinkChange {
  reason: LinkChangeReason;
  state: LinkState;
}

/** A subscription handle; `dispose()` stops further calls and is safe to call twice. */
export interface Subscription {
  dispose(): void;
}

/** Options for a new link; only `latencyMs` is required. */
export interface LinkOptions {
  /** One-way latency in milliseconds (finite, at least 0). */
  latencyMs: number;
  /** Uniform random extra delay bound per chunk; defaults to 0. */
  jitterMs?: number;
  /** Chunk loss probability in [0, 1]; defaults to 0. */
  loss?: number;
  /** Extra delay for a lost chunk; defaults to 200 ms, a typical minimum TCP retransmission timeout. */
  retransmitTimeoutMs?: number;
  /** Source of uniform numbers in [0, 1) for jitter and loss; defaults to `Math.random`, inject one for reproducible tests. */
  random?: () => number;
}

/**
 * One proxied connection's handle on its link, used by `Forward` (and any other transport) to ask for
 * delays, report delivered bytes, and learn when a partition has broken the connection.
 */
export interface LinkSession {
  /** Whether the link is partitioned right now (bytes must be dropped). */
  readonly partitioned: boolean;
  /** Whether this connection has lost bytes (or a connection setup) to a partition. */
  readonly lost: boolean;
  /** Samples the delay for the next chunk or control event: latency, plus jitter, plus loss delay. */
  sampleDelayMs(): number;
  /** Records that the connection dropped something to a partition; the link breaks it on `heal()`. */
  markLost(): void;
  /** Adds delivered bytes to the link's counters. */
  recordDelivered(direction: LinkDirection, bytes: number): void;
  /** Unregisters the connection; safe to call twice. */
  close(): void;
}

/** The default extra delay of a lost chunk: a typical minimum TCP retransmission timeout. */
export const DEFAULT_RETRANSMIT_TIMEOUT_MS = 200;

/** The canonical name of an unordered region pair: both names sorted and joined with `~`. */
export function linkName(a: string, b: string): string {
  if (a === "" || b === "") throw new RangeError("A link needs two non-empty region names.");
  if (a === b) throw new RangeError(`A link joins two different regions; got "${a}" twice.`);
  return a < b ? `${a}~${b}` : `${b}~${a}`;
}

interface SessionEntry {
  lost: boolean;
  onBreak: () => void;
}

/**
 * The emulated WAN between two regions (an unordered pair): latency, jitter, loss and partitions that
 * every connection proxied over it obeys. Changes apply to chunks that arrive after the change.
 */
export class Link {
  readonly #name: string;
  #latencyMs: number;
  #jitterMs: number;
  #loss: number;
  #retransmitTimeoutMs: number;
  #partitioned = false;
  readonly #random: () => number;
  readonly #sessions = new Set<SessionEntry>();
  readonly #listeners = new Set<(change: LinkChange) => void>();
  #bytesForward = 0;
  #bytesBackward = 0;

  /** Creates the link between regions `a` and `b` (order does not matter). Defaults: no jitter, no loss, 200 ms retransmission timeout, not partitioned. */
  constructor(a: string, b: string, options: LinkOptions) {
    this.#name = linkName(a, b);
    this.#latencyMs = checkMs(this.#name, "latencyMs", options.latencyMs);
    this.#jitterMs = checkMs(this.#name, "jitterMs", options.jitterMs ?? 0);
    this.#loss = checkRatio(this.#name, options.loss ?? 0);
    this.#retransmitTimeoutMs = checkMs(
      this.#name,
      "retransmitTimeoutMs",
      options.retransmitTimeoutMs ?? DEFAULT_RETRANSMIT_TIMEOUT_MS,
    );
    this.#random = options.random ?? Math.random;
  }

  /** The unordered pair's name, e.g. `eu-west~us-east`. */
  get name(): string {
    return this.#name;
  }

  /** The one-way latency in milliseconds. */
  get latencyMs(): number {
    return this.#latencyMs;
  }

  /** The jitter bound in milliseconds (0 by default): each chunk waits a uniform extra in [0, jitterMs). */
  get jitterMs(): number {
    return this.#jitterMs;
  }

  /** The chunk loss probability in [0, 1] (0 by default). */
  get loss(): number {
    return this.#loss;
  }

  /** The extra delay a lost chunk pays (200 ms by default). */
  get retransmitTimeoutMs(): number {
    return this.#retransmitTimeoutMs;
  }

  /** Whether the link is currently a black hole. */
  get partitioned(): boolean {
    return this.#partitioned;
  }

  /** Sets the one-way latency for chunks that arrive from now on; queued chunks keep their due time. */
  setLatency(ms: number): void {
    this.#latencyMs = checkMs(this.#name, "latencyMs", ms);
    this.#emit("latency");
  }

  /** Sets the jitter bound; chunks never overtake each other, so jitter delays but never reorders. */
  setJitter(ms: number): void {
    this.#jitterMs = checkMs(this.#name, "jitterMs", ms);
    this.#emit("jitter");
  }

  /**
   * Sets the probability that a chunk is "lost": TCP turns loss into delay, so such a chunk (and the
   * ones behind it) waits one extra retransmission timeout. Bytes are never corrupted or reordered.
   */
  setLoss(ratio: number, options?: { retransmitTimeoutMs?: number }): void {
    this.#loss = checkRatio(this.#name, ratio);
    if (options?.retransmitTimeoutMs !== undefined)
      this.#retransmitTimeoutMs = checkMs(this.#name, "retransmitTimeoutMs", options.retransmitTimeoutMs);
    this.#emit("loss");
  }

  /**
   * Turns the link into a black hole: bytes in both directions are dropped, new connections are
   * accepted but never connected upstream, open ones stay open but silent. Idempotent.
   */
  partition(): void {
    if (this.#partitioned) return;
    this.#partitioned = true;
    this.#emit("partition");
  }

  /**
   * Ends a partition. Connections that lost bytes (or their setup) during it are destroyed, as TCP
   * would eventually reset them; untouched and new connections work normally. Idempotent.
   */
  heal(): void {
    if (!this.#partitioned) return;
    this.#partitioned = false;
    const broken = [...this.#sessions].filter((s) => s.lost);
    for (const session of broken) {
      this.#sessions.delete(session);
      session.onBreak();
    }
    this.#emit("heal");
  }

  /** A JSON-able snapshot of the link's settings and counters. */
  state(): LinkState {
    return {
      name: this.#name,
      latencyMs: this.#latencyMs,
      jitterMs: this.#jitterMs,
      loss: this.#loss,
      retransmitTimeoutMs: this.#retransmitTimeoutMs,
      partitioned: this.#partitioned,
      connections: this.#sessions.size,
      bytes: { forward: this.#bytesForward, backward: this.#bytesBackward },
    };
  }

  /**
   * Calls `listener` after every change of settings, partition state or connection count (not byte
   * counters). Listeners run synchronously and must not throw. Returns a handle that unsubscribes.
   */
  onChange(listener: (change: LinkChange) => void): Subscription {
    // A wrapper so that subscribing the same function twice gives two independent subscriptions.
    const entry = (change: LinkChange): void => listener(change);
    this.#listeners.add(entry);
    return { dispose: () => void this.#listeners.delete(entry) };
  }

  /**
   * Registers one proxied connection. `onBreak` is called (once) by `heal()` when the connection lost
   * bytes during the partition; the caller must then destroy it. Close the session when the connection ends.
   */
  open(onBreak: () => void): LinkSession {
    const entry: SessionEntry = { lost: false, onBreak };
    this.#sessions.add(entry);
    this.#emit("connections");
    let closed = false;
    const sampleDelayMs = (): number => this.#sampleDelayMs();
    const isPartitioned = (): boolean => this.#partitioned;
    const record = (direction: LinkDirection, bytes: number): void => {
      if (direction === "forward") this.#bytesForward += bytes;
      else this.#bytesBackward += bytes;
    };
    const close = (): void => {
      if (closed) return;
      closed = true;
      // heal() removes broken sessions itself, so only a real removal is a change.
      if (this.#sessions.delete(entry)) this.#emit("connections");
    };
    return {
      get partitioned() {
        return isPartitioned();
      },
      get lost() {
        return entry.lost;
      },
      sampleDelayMs,
      markLost: () => {
        entry.lost = true;
      },
      recordDelivered: record,
      close,
    };
  }

  #sampleDelayMs(): number {
    let delay = this.#latencyMs;
    if (this.#jitterMs > 0) delay += this.#random() * this.#jitterMs;
    if (this.#loss > 0 && this.#random() < this.#loss) delay += this.#retransmitTimeoutMs;
    return delay;
  }

  #emit(reason: LinkChangeReason): void {
    if (this.#listeners.size === 0) return;
    const change: LinkChange = { reason, state: this.state() };
    for (const listener of [...this.#listeners]) listener(change);
  }
}

function checkMs(link: string, field: string, value: number): number {
  if (!Number.isFinite(value) || value < 0)
    throw new RangeError(
      `Link ${link}: ${field} must be a finite number of milliseconds >= 0, got ${value}.`,
    );
  return value;
}

function checkRatio(link: string, value: number): number {
  if (!Number.isFinite(value) || value < 0 || value > 1)
    throw new RangeError(
      `Link ${link}: loss must be a ratio between 0 and 1 (e.g. 0.01 for 1%), got ${value}.`,
    );
  return value;
}
