/**
 * The router's routing table: pushed by the controller over server-sent events
 * (`/v1/routing/stream`), polled every few seconds when the stream is down, and persisted after
 * every change. The router starts from the persisted table and keeps serving from this
 * last-known-good table while the controller is unreachable (static stability), for as long as
 * `lastKnownGoodTtlMs` allows; after that the table is dropped and requests get 503.
 */

import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { httpRequest } from "../lib/http-request.js";
import { decodeBucketTable, type RoutingTable } from "../world/contracts.js";

export interface TableClientOptions {
  readonly controllerUrl: string;
  readonly token: string;
  /** Where the last-known-good table is persisted. */
  readonly file: string;
  /** How long a table is kept without hearing from the controller. Default 7 days. */
  readonly lastKnownGoodTtlMs?: number;
  /** Poll period while the push stream is down. Default 2 s. */
  readonly pollMs?: number;
  readonly now?: () => number;
  readonly log?: (line: string) => void;
}

/** A decoded table, ready for the hot path. */
export interface LiveTable {
  readonly table: RoutingTable;
  readonly buckets: Uint32Array;
  /** Drained region names, zone ids and instance ids. */
  readonly drained: ReadonlySet<string>;
  /** When the controller last confirmed it (ms since the epoch). */
  readonly confirmedAt: number;
}

export class TableClient {
  #options: TableClientOptions;
  #live: LiveTable | undefined;
  #connected = false;
  #stopped = false;
  #abort: AbortController | undefined;
  #timer: NodeJS.Timeout | undefined;
  #wake: (() => void) | undefined;
  #listeners = new Set<(t: LiveTable) => void>();
  #loop: Promise<void> = Promise.resolve();

  constructor(options: TableClientOptions) {
    this.#options = options;
    this.#loadPersisted();
  }

  #now(): number {
    return (this.#options.now ?? Date.now)();
  }

  /** The table to route with, or undefined when there is none or it outlived its TTL. */
  current(): LiveTable | undefined {
    const live = this.#live;
    if (!live) return undefined;
    if (this.#now() - live.confirmedAt > (this.#options.lastKnownGoodTtlMs ?? 7 * 86_400_000))
      return undefined;
    return live;
  }

  /** True while the controller is not confirming the table (serving from the last-known-good one). */
  get stale(): boolean {
    return !this.#connected;
  }

  /** Milliseconds since the controller last confirmed the table; undefined without one. */
  ageMs(): number | undefined {
    return this.#live ? this.#now() - this.#live.confirmedAt : undefined;
  }

  /** Calls `listener` on every new table; returns a disposable subscription. */
  onChange(listener: (t: LiveTable) => void): { dispose(): void } {
    this.#listeners.add(listener);
    return { dispose: () => this.#listeners.delete(listener) };
  }

  /** Loads the table from the controller once (so a router can start with it), then follows changes. */
  async start(): Promise<void> {
    await this.#poll().catch(() => {});
    this.#loop = this.#follow();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#abort?.abort();
    if (this.#timer) clearTimeout(this.#timer);
    this.#wake?.(); // end the poll sleep at once
    await this.#loop.catch(() => {});
  }

  /** Applies a table as if received from the controller (used by tests and standalone routers). */
  apply(table: RoutingTable, confirmedAt = this.#now(), persist = true): void {
    const drained = new Set(table.drains.map((d) => d.target.id));
    const changed =
      this.#live?.table.version !== table.version || this.#live?.table.generatedAt !== table.generatedAt;
    this.#live = { table, buckets: decodeBucketTable(table.bucketTable), drained, confirmedAt };
    if (persist && changed) this.#persist();
    for (const l of this.#listeners) l(this.#live);
  }

  #loadPersisted(): void {
    const { file } = this.#options;
    if (!existsSync(file)) return;
    try {
      const saved = JSON.parse(readFileSync(file, "utf8")) as { table: RoutingTable; confirmedAt: number };
      this.apply({ ...saved.table, drains: saved.table.drains ?? [] }, saved.confirmedAt, false);
      this.#options.log?.(`loaded the last-known-good routing table v${saved.table.version} from ${file}`);
    } catch (err) {
      this.#options.log?.(`ignoring an unreadable routing table in ${file}: ${(err as Error).message}`);
    }
  }

  #persist(): void {
    const live = this.#live;
    if (!live) return;
    const { file } = this.#options;
    try {
      mkdirSync(dirname(file), { recursive: true });
      writeFileSync(`${file}.tmp`, JSON.stringify({ table: live.table, confirmedAt: live.confirmedAt }));
      renameSync(`${file}.tmp`, file); // atomic: a crash leaves the old table or the new one
    } catch (err) {
      this.#options.log?.(`could not persist the routing table: ${(err as Error).message}`);
    }
  }

  async #poll(): Promise<void> {
    const { controllerUrl, token } = this.#options;
    const res = await httpRequest(`${controllerUrl}/v1/routing`, {
      headers: { authorization: `Bearer ${token}` },
      signal: AbortSignal.timeout(2_000),
    });
    if (!res.ok) {
      await res.drain();
      throw new Error(`controller answered ${res.status}`);
    }
    this.apply(await res.json<RoutingTable>());
  }

  /** Follows the push stream; while it is down, polls; reconnects with a short delay. */
  async #follow(): Promise<void> {
    while (!this.#stopped) {
      try {
        await this.#stream();
      } catch {
        // fall through to a poll and a reconnect
      }
      if (this.#stopped) return;
      this.#setConnected(false);
      try {
        await this.#poll();
        // a poll answer confirms the table, but the stream is what keeps it current
      } catch {
        // controller unreachable: keep the last-known-good table
      }
      if (this.#stopped) return;
      // With no table yet (a new world: the controller is starting too), ask again soon.
      const pollMs = this.#options.pollMs ?? 2_000;
      await new Promise<void>((r) => {
        this.#wake = r;
        this.#timer = setTimeout(r, this.#live ? pollMs : Math.min(pollMs, 200));
      });
    }
  }

  async #stream(): Promise<void> {
    const { controllerUrl, token } = this.#options;
    this.#abort = new AbortController();
    const res = await httpRequest(`${controllerUrl}/v1/routing/stream`, {
      headers: { authorization: `Bearer ${token}`, accept: "text/event-stream" },
      signal: this.#abort.signal,
    });
    if (!res.ok) {
      res.body.destroy();
      throw new Error(`stream answered ${res.status}`);
    }
    this.#setConnected(true);
    const decoder = new TextDecoder();
    let buffer = "";
    // A silent stream (no keep-alive for 40 s) is a dead one.
    let watchdog = setTimeout(() => this.#abort?.abort(), 40_000);
    try {
      for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
        clearTimeout(watchdog);
        watchdog = setTimeout(() => this.#abort?.abort(), 40_000);
        buffer += decoder.decode(chunk, { stream: true });
        let end = buffer.indexOf("\n\n");
        while (end >= 0) {
          const message = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          this.#onMessage(message);
          end = buffer.indexOf("\n\n");
        }
        if (this.#live) this.#live = { ...this.#live, confirmedAt: this.#now() };
      }
    } finally {
      clearTimeout(watchdog);
    }
  }

  #onMessage(message: string): void {
    let event = "message";
    const data: string[] = [];
    for (const line of message.split("\n")) {
      if (line.startsWith("event:")) event = line.slice(6).trim();
      else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
    }
    if (event !== "routing" || data.length === 0) return;
    try {
      this.apply(JSON.parse(data.join("\n")) as RoutingTable);
    } catch (err) {
      this.#options.log?.(`ignoring a malformed routing table: ${(err as Error).message}`);
    }
  }

  #setConnected(connected: boolean): void {
    if (connected !== this.#connected) {
      this.#options.log?.(
        connected
          ? "following the controller's routing table"
          : "controller unreachable: serving from the last-known-good routing table",
      );
    }
    this.#connected = connected;
  }
}
