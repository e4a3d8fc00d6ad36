import net, { type AddressInfo, type Socket } from "node:net";
import { ProxiedConnection } from "./connection.js";
import type { Link } from "./link.js";

/** The default bound on one direction's delay queue before the proxy stops reading: 1 MiB. */
export const DEFAULT_MAX_QUEUED_BYTES = 1024 * 1024;

/** Where a forward listens and where it connects; listen defaults are `127.0.0.1` and port 0 (any free port). */
export interface ForwardOptions {
  /** The link whose latency, loss and partitions every proxied connection obeys. */
  link: Link;
  /** Address to listen on; defaults to `127.0.0.1`. */
  listenHost?: string;
  /** Port to listen on; defaults to 0, which picks a free port (read it from `address()`). */
  listenPort?: number;
  /** Address of the real service behind the link. */
  targetHost: string;
  /** Port of the real service behind the link. */
  targetPort: number;
  /**
   * Per connection and direction, reading pauses while this many bytes wait for their due time;
   * defaults to 1 MiB. Together with the socket's own write buffer this bounds the proxy's memory.
   */
  maxQueuedBytes?: number;
}

/** A host and port pair. */
export interface HostPort {
  host: string;
  port: number;
}

/** Counters of one forward, for tests and diagnostics. */
export interface ForwardStats {
  /** Live proxied connections. */
  connections: number;
  /** Bytes held right now across all connections and directions (queues plus unflushed writes). */
  bufferedBytes: number;
  /**
   * The most bytes one direction of one connection ever held. It stays below `maxQueuedBytes` plus
   * one read chunk (64 KiB) plus the socket's write high-water mark (16 KiB) plus one more chunk.
   */
  peakBufferedBytes: number;
}

/**
 * A TCP listener whose every accepted connection is proxied to a target through a `Link`: each chunk
 * is delivered one link delay after it arrived, in order, with backpressure, half-close and resets
 * carried across. Create one with `Forward.listen()`.
 */
export class Forward {
  readonly #server: net.Server;
  readonly #link: Link;
  readonly #target: HostPort;
  readonly #maxQueuedBytes: number;
  readonly #connections = new Set<ProxiedConnection>();
  #address: HostPort = { host: "", port: 0 };
  #peakBufferedBytes = 0;
  #closing: Promise<void> | undefined;

  private constructor(options: ForwardOptions) {
    this.#link = options.link;
    this.#target = { host: options.targetHost, port: checkPort("targetPort", options.targetPort, 1) };
    const max = options.maxQueuedBytes ?? DEFAULT_MAX_QUEUED_BYTES;
    if (!Number.isInteger(max) || max < 1)
      throw new RangeError(`Forward maxQueuedBytes must be a positive integer, got ${max}.`);
    this.#maxQueuedBytes = max;
    this.#server = net.createServer({ allowHalfOpen: true }, (socket) => this.#accept(socket));
  }

  /** Starts listening and resolves once bound; rejects with the listen error (e.g. EADDRINUSE). */
  static async listen(options: ForwardOptions): Promise<Forward> {
    const forward = new Forward(options);
    const host = options.listenHost ?? "127.0.0.1";
    const port = checkPort("listenPort", options.listenPort ?? 0, 0);
    await new Promise<void>((resolve, reject) => {
      forward.#server.once("error", reject);
      forward.#server.listen({ host, port }, () => {
        forward.#server.off("error", reject);
        resolve();
      });
    });
    // Accept failures (e.g. EMFILE) only cost the one connection; they must not crash the world.
    forward.#server.on("error", () => {});
    const bound = forward.#server.address() as AddressInfo;
    forward.#address = { host: bound.address, port: bound.port };
    return forward;
  }

  /** The link this forward's connections travel over. */
  get link(): Link {
    return this.#link;
  }

  /** Where proxied connections go. */
  get target(): HostPort {
    return { ...this.#target };
  }

  /** Whether `close()` has been called. */
  get closed(): boolean {
    return this.#closing !== undefined;
  }

  /** The bound address; with `listenPort` 0 this is where the free port shows. */
  address(): HostPort {
    return { ...this.#address };
  }

  /** Current counters: live connections, bytes buffered now, and the peak per direction. */
  stats(): ForwardStats {
    let buffered = 0;
    for (const connection of this.#connections) buffered += connection.bufferedBytes;
    return {
      connections: this.#connections.size,
      bufferedBytes: buffered,
      peakBufferedBytes: this.#peakBufferedBytes,
    };
  }

  /** Stops listening, destroys every live connection, and resolves once the port and all sockets are released. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    const serverClosed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    await Promise.all([...this.#connections].map((connection) => connection.destroy()));
    await serverClosed;
  }

  #accept(client: Socket): void {
    if (this.#closing !== undefined) {
      client.destroy();
      return;
    }
    const connection = new ProxiedConnection({
      client,
      link: this.#link,
      targetHost: this.#target.host,
      targetPort: this.#target.port,
      maxQueuedBytes: this.#maxQueuedBytes,
      onBuffered: (bytes) => {
        if (bytes > this.#peakBufferedBytes) this.#peakBufferedBytes = bytes;
      },
      onClosed: (c) => this.#connections.delete(c),
    });
    this.#connections.add(connection);
  }
}

function checkPort(field: string, port: number, min: number): number {
  if (!Number.isInteger(port) || port < min || port > 65_535)
    throw new RangeError(`Forward ${field} must be an integer port between ${min} and 65535, got ${port}.`);
  return port;
}
