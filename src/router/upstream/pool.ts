/**
 * Keep-alive HTTP/1.1 connections from the router to one upstream instance, and the exchanges
 * (one request, one response) that run on them.
 *
 * This is the router's hot path, so it is small and direct: a request head is rendered once as a
 * string and written with its body in one `writev`; the response is parsed by {@link ResponseParser}
 * and its body chunks go straight to the client's response with backpressure, never through an
 * intermediate stream. Idle connections are reused newest first, and closed before the upstream's
 * own `Keep-Alive: timeout` would close them under us. Deadlines (time to the response head, idle
 * time in the body) are checked by one sweep per pool every {@link SWEEP_MS} ms instead of a timer
 * per request.
 *
 * Errors carry a stable `code` (the socket's, like `ECONNREFUSED`, or `UPSTREAM_*`) and `notSent`:
 * true only when the connection was never established, so not one byte of the request left.
 *
 * This file holds the pool (connections, the queue, the sweep); connection.ts one connection;
 * exchange.ts one request and its response.
 */
import { connect } from "node:net";
import { Connection } from "./connection.js";
import {
  Exchange,
  type ExchangeLimits,
  type HeadCallback,
  UpstreamError,
  type UpstreamRequest,
} from "./exchange.js";

export {
  type BodySink,
  Exchange,
  type ExchangeLimits,
  UpstreamError,
  type UpstreamRequest,
} from "./exchange.js";

/** How often deadlines and idle connections are checked. */
export const SWEEP_MS = 20;

export interface UpstreamPoolOptions {
  readonly host: string;
  readonly port: number;
  /** Connections open at once; further requests wait in order. Default 128. */
  readonly maxConnections?: number;
  /** How long an idle connection is kept. Default 30 s (less when the upstream says so). */
  readonly idleTimeoutMs?: number;
  /** Time to establish a connection. Default 2 s. */
  readonly connectTimeoutMs?: number;
}

/** Connections to one upstream and the requests waiting for one. */
export class UpstreamPool {
  readonly target: { readonly host: string; readonly port: number };
  readonly name: string;
  readonly #maxConnections: number;
  readonly #idleTimeoutMs: number;
  readonly #connectTimeoutMs: number;
  #all = new Set<Connection>();
  #idle: Connection[] = [];
  #queue: Exchange[] = [];
  #active = new Set<Exchange>();
  #sweeper: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(options: UpstreamPoolOptions) {
    this.target = { host: options.host, port: options.port };
    this.name = `${options.host}:${options.port}`;
    this.#maxConnections = options.maxConnections ?? 128;
    this.#idleTimeoutMs = options.idleTimeoutMs ?? 30_000;
    this.#connectTimeoutMs = options.connectTimeoutMs ?? 2_000;
  }

  /**
   * Sends a request; `onHead` runs once, with the response head or the error that ended the
   * exchange before it. Then `pipe` or `discard` the returned exchange's body.
   */
  request(request: UpstreamRequest, limits: ExchangeLimits, onHead: HeadCallback): Exchange {
    const exchange = new Exchange(this, request, limits, onHead);
    if (this.#closed) {
      exchange.fail(new UpstreamError("UPSTREAM_POOL_CLOSED", `${this.name}: the pool is closed`, true));
      return exchange;
    }
    this.#active.add(exchange);
    this.#sweep();
    const idle = this.#takeIdle();
    if (idle) idle.send(exchange);
    else if (this.#all.size < this.#maxConnections) this.#open().send(exchange);
    else this.#queue.push(exchange);
    return exchange;
  }

  /** Connections open, idle, and requests waiting for one. */
  stats(): { open: number; idle: number; queued: number; active: number } {
    return {
      open: this.#all.size,
      idle: this.#idle.length,
      queued: this.#queue.length,
      active: this.#active.size,
    };
  }

  /** Closes every connection and fails what is in flight or waiting. */
  close(): void {
    this.#closed = true;
    if (this.#sweeper) clearInterval(this.#sweeper);
    this.#sweeper = undefined;
    for (const exchange of [...this.#queue, ...this.#active])
      exchange.abort("UPSTREAM_POOL_CLOSED", `${this.name}: the pool was closed`);
    this.#queue = [];
    for (const connection of this.#all) connection.destroy();
  }

  /** @internal a connection finished its exchange and may carry another. */
  release(connection: Connection): void {
    const next = this.#queue.shift();
    if (next) {
      connection.send(next);
      return;
    }
    const now = performance.now();
    connection.idleUntil = now + Math.min(this.#idleTimeoutMs, connection.keepAliveMs);
    if (connection.idleUntil <= now) {
      connection.destroy();
      return;
    }
    connection.resume();
    this.#idle.push(connection);
  }

  /** @internal a connection closed. */
  dropped(connection: Connection): void {
    this.#all.delete(connection);
    const i = this.#idle.indexOf(connection);
    if (i >= 0) this.#idle.splice(i, 1);
    // A waiting request gets a new connection in place of the closed one.
    if (this.#queue.length > 0 && !this.#closed && this.#all.size < this.#maxConnections) {
      const next = this.#queue.shift() as Exchange;
      this.#open().send(next);
    }
  }

  /** @internal an exchange ended. */
  forget(exchange: Exchange): void {
    this.#active.delete(exchange);
    const i = this.#queue.indexOf(exchange);
    if (i >= 0) this.#queue.splice(i, 1);
  }

  #takeIdle(): Connection | undefined {
    for (;;) {
      const c = this.#idle.pop();
      if (c === undefined || !c.dead) return c;
    }
  }

  #open(): Connection {
    const socket = connect({ host: this.target.host, port: this.target.port });
    const connection = new Connection(this, socket);
    this.#all.add(connection);
    const timer = setTimeout(() => {
      socket.destroy(
        Object.assign(new Error(`no connection within ${this.#connectTimeoutMs} ms`), {
          code: "UPSTREAM_CONNECT_TIMEOUT",
        }),
      );
    }, this.#connectTimeoutMs);
    timer.unref();
    socket.once("connect", () => clearTimeout(timer));
    socket.once("close", () => clearTimeout(timer));
    return connection;
  }

  /** Starts the sweep while there is anything to watch. */
  #sweep(): void {
    if (this.#sweeper !== undefined) return;
    this.#sweeper = setInterval(() => {
      const now = performance.now();
      for (const exchange of this.#active) {
        if (exchange.deadline <= now)
          exchange.abort(
            exchange.inBody ? "UPSTREAM_BODY_TIMEOUT" : "UPSTREAM_HEADERS_TIMEOUT",
            exchange.inBody
              ? `${this.name}: the response body stalled`
              : `${this.name}: no response head in time`,
          );
      }
      for (let i = this.#idle.length - 1; i >= 0; i--) {
        const c = this.#idle[i] as Connection;
        if (c.idleUntil <= now) {
          this.#idle.splice(i, 1);
          c.destroy();
        }
      }
      if (this.#active.size === 0 && this.#idle.length === 0) {
        clearInterval(this.#sweeper);
        this.#sweeper = undefined;
      }
    }, SWEEP_MS);
    this.#sweeper.unref();
  }
}
