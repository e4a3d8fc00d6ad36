/**
 * The writer endpoint of a cell in one region: a TCP forwarder to the cell's current primary.
 * Services write through it, so repointing it is how a failover reaches them. While the cell is
 * fenced it refuses every connection, and fencing or repointing closes the connections already
 * open, so no write can reach a primary that is no longer the primary.
 */
import { createConnection, createServer, type Server, type Socket } from "node:net";
import type { Endpoint } from "../world/layout.js";

export interface WriterStats {
  readonly target: Endpoint | null;
  readonly fenced: boolean;
  readonly open: number;
  readonly accepted: number;
  readonly refused: number;
}

export class WriterEndpoint {
  readonly listen: Endpoint;
  #server: Server | undefined;
  #target: Endpoint | null = null;
  #fenced = true;
  #pairs = new Set<{ client: Socket; upstream: Socket }>();
  #accepted = 0;
  #refused = 0;

  /** A writer endpoint on `listen`; it starts fenced, with no target, until `route` says where. */
  constructor(listen: Endpoint) {
    this.listen = listen;
  }

  /** Starts listening. */
  async start(): Promise<void> {
    const server = createServer((client) => this.#accept(client));
    server.on("error", () => {});
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.listen.port, this.listen.host, () => {
        server.off("error", reject);
        resolve();
      });
    });
    this.#server = server;
  }

  /**
   * Points the endpoint at `target` (the primary as reached from this region), or fences it with
   * `null` / `fenced`. Any change closes the open connections.
   */
  route(target: Endpoint | null, fenced: boolean): void {
    const changed =
      fenced !== this.#fenced || target?.host !== this.#target?.host || target?.port !== this.#target?.port;
    this.#target = target;
    this.#fenced = fenced || target === null;
    if (changed) this.#closeAll();
  }

  stats(): WriterStats {
    return {
      target: this.#target,
      fenced: this.#fenced,
      open: this.#pairs.size,
      accepted: this.#accepted,
      refused: this.#refused,
    };
  }

  #accept(client: Socket): void {
    const target = this.#target;
    if (this.#fenced || target === null) {
      this.#refused++;
      client.destroy();
      return;
    }
    this.#accepted++;
    client.setNoDelay(true);
    const upstream = createConnection({ host: target.host, port: target.port });
    upstream.setNoDelay(true);
    const pair = { client, upstream };
    this.#pairs.add(pair);
    const close = () => {
      this.#pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on("error", close).on("close", close);
    upstream.on("error", close).on("close", close);
    client.pipe(upstream);
    upstream.pipe(client);
  }

  #closeAll(): void {
    for (const { client, upstream } of this.#pairs) {
      client.destroy();
      upstream.destroy();
    }
    this.#pairs.clear();
  }

  /** Stops listening and closes every connection. */
  async close(): Promise<void> {
    this.#closeAll();
    const server = this.#server;
    this.#server = undefined;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
