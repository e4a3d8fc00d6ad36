import net, { type Socket } from "node:net";
import type { Link, LinkSession } from "./link.js";
import { DelayedPipe } from "./pipe.js";

/** What one proxied connection needs from its `Forward`. */
export interface ProxiedConnectionOptions {
  /** The accepted client socket (the server must use `allowHalfOpen: true`). */
  client: Socket;
  /** The link whose latency, loss and partitions apply. */
  link: Link;
  /** Where the upstream connection goes. */
  targetHost: string;
  targetPort: number;
  /** Per-direction queue bound before reading pauses. */
  maxQueuedBytes: number;
  /** Called after each new chunk with this connection's buffered bytes in that direction. */
  onBuffered: (bytes: number) => void;
  /** Called once when the connection is finished (both sockets closed, or destroyed). */
  onClosed: (connection: ProxiedConnection) => void;
}

/**
 * One client connection and its upstream twin, joined by two delayed pipes. The upstream connect
 * starts one sampled link delay after accept; resets travel with one link delay and overtake queued
 * data (as a TCP RST makes the receiver drop what it has not read); FINs travel in order behind data.
 */
export class ProxiedConnection {
  readonly #client: Socket;
  readonly #targetHost: string;
  readonly #targetPort: number;
  readonly #maxQueuedBytes: number;
  readonly #onBuffered: (bytes: number) => void;
  readonly #onClosed: (connection: ProxiedConnection) => void;
  readonly #session: LinkSession;
  readonly #forward: DelayedPipe;
  readonly #timers = new Set<NodeJS.Timeout>();
  #backward: DelayedPipe | undefined;
  #upstream: Socket | undefined;
  #clientClosed = false;
  #upstreamClosed = false;
  #finished = false;

  /** Starts proxying at once: reads the client and schedules the upstream connect. */
  constructor(options: ProxiedConnectionOptions) {
    this.#client = options.client;
    this.#targetHost = options.targetHost;
    this.#targetPort = options.targetPort;
    this.#maxQueuedBytes = options.maxQueuedBytes;
    this.#onBuffered = options.onBuffered;
    this.#onClosed = options.onClosed;
    this.#session = options.link.open(() => void this.destroy({ reset: true }));
    this.#client.setNoDelay(true);
    this.#forward = new DelayedPipe({
      source: this.#client,
      session: this.#session,
      direction: "forward",
      maxQueuedBytes: this.#maxQueuedBytes,
      onBuffered: this.#onBuffered,
    });
    this.#client.on("error", () => this.#propagateReset("upstream"));
    this.#client.on("close", () => {
      this.#clientClosed = true;
      this.#reapLater("upstream");
      this.#maybeFinish();
    });
    // Accepted during a partition: the SYN is lost, so the connection never reaches upstream.
    if (this.#session.partitioned) this.#session.markLost();
    else this.#after(this.#session.sampleDelayMs(), () => this.#connect());
  }

  /** Bytes held for this connection in both directions (queues plus unflushed writes). */
  get bufferedBytes(): number {
    return this.#forward.bufferedBytes + (this.#backward?.bufferedBytes ?? 0);
  }

  /**
   * Destroys both sockets now (with a TCP reset when `reset` is true, default false) and resolves once
   * both have closed. Safe to call more than once.
   */
  destroy(options?: { reset?: boolean }): Promise<void> {
    const sockets = [this.#client, this.#upstream].filter((s): s is Socket => s !== undefined);
    for (const socket of sockets) {
      if (options?.reset === true) resetSocket(socket);
      else socket.destroy();
    }
    this.#finish();
    return Promise.all(sockets.map(whenClosed)).then(() => undefined);
  }

  #connect(): void {
    if (this.#finished || this.#client.destroyed) return;
    if (this.#session.partitioned) {
      this.#session.markLost();
      return;
    }
    const upstream = net.connect({ host: this.#targetHost, port: this.#targetPort, allowHalfOpen: true });
    upstream.setNoDelay(true);
    this.#upstream = upstream;
    upstream.on("error", () => this.#propagateReset("client"));
    upstream.on("close", () => {
      this.#upstreamClosed = true;
      this.#reapLater("client");
      this.#maybeFinish();
    });
    this.#backward = new DelayedPipe({
      source: upstream,
      session: this.#session,
      direction: "backward",
      maxQueuedBytes: this.#maxQueuedBytes,
      onBuffered: this.#onBuffered,
    });
    this.#backward.setTarget(this.#client);
    // Node buffers writes until the connect completes, so queued client bytes can go now.
    this.#forward.setTarget(upstream);
  }

  /** One side failed or was reset: the other side is reset one link delay later, unless the link eats it. */
  #propagateReset(victim: "client" | "upstream"): void {
    if (this.#finished) return;
    if (this.#session.partitioned) {
      this.#session.markLost();
      return;
    }
    this.#after(this.#session.sampleDelayMs(), () => {
      if (this.#session.partitioned) {
        this.#session.markLost();
        return;
      }
      // No upstream yet: #connect sees the destroyed client and never dials.
      const socket = victim === "client" ? this.#client : this.#upstream;
      if (socket !== undefined) resetSocket(socket);
    });
  }

  /**
   * One side closed for good: whatever the other side still sends can reach no one. If it is still
   * open once anything in flight had time to arrive (a second, or four link delays), it is reset,
   * as a real peer's next segment would be. Otherwise a half-open socket whose reads are paused
   * (its pipe's target gone) would keep its peer blocked on a full window, and itself open, forever.
   */
  #reapLater(victim: "client" | "upstream"): void {
    if (this.#finished) return;
    this.#after(Math.max(1_000, 4 * this.#session.sampleDelayMs()), () => {
      const socket = victim === "client" ? this.#client : this.#upstream;
      if (socket !== undefined && !socket.destroyed) resetSocket(socket);
    });
  }

  #after(ms: number, fn: () => void): void {
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      fn();
    }, Math.ceil(ms));
    this.#timers.add(timer);
  }

  #maybeFinish(): void {
    if (!this.#clientClosed) return;
    if (this.#upstream !== undefined && !this.#upstreamClosed) return;
    this.#finish();
  }

  #finish(): void {
    if (this.#finished) return;
    this.#finished = true;
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    this.#forward.dispose();
    this.#backward?.dispose();
    this.#session.close();
    this.#onClosed(this);
  }
}

/**
 * Destroys a socket with a TCP RST where possible, so the peer sees ECONNRESET rather than a clean FIN.
 * Not while the FIN it was asked to send (`end()`) is still being sent: libuv refuses a reset during
 * a shutdown (EINVAL), and Node then never closes the handle, so the socket never emits 'close' and
 * node's exit cleanup spins on it at full CPU forever. Such a socket is destroyed plainly: its peer
 * already has (or is about to get) the FIN.
 */
export function resetSocket(socket: Socket): void {
  if (socket.destroyed) return;
  if (socket.writableEnded && !socket.writableFinished) {
    socket.destroy();
    return;
  }
  try {
    socket.resetAndDestroy();
  } catch {
    socket.destroy();
  }
}

function whenClosed(socket: Socket): Promise<void> {
  if (socket.closed) return Promise.resolve();
  return new Promise((resolve) => socket.once("close", () => resolve()));
}
