/**
 * The live routing table: `GET /v1/routing/stream` pushes the whole table (`event: routing`) when a
 * client connects and again whenever what it says changes, so a drain or a fence reaches every
 * router within moments of the request that made it.
 *
 * How a change is noticed, in one controller process:
 * - the store calls `notify()` after every commit that bumped the desired version (cells, restart
 *   nonces, drains, bucket table);
 * - the heartbeat route calls `heartbeat()` after storing an agent's report, which notifies only when
 *   the report changes the health of an instance as the current table shows it;
 * - a check every `checkMs` (500 ms by default) compares the desired version and which agents are
 *   within the heartbeat timeout with what the current table was built from, which catches agents
 *   falling silent; every tenth check rebuilds the table regardless, which catches changes made
 *   through another controller process on the same database.
 * A notification rebuilds the table from one snapshot for every stream at once (rebuilds never run
 * concurrently; notifications during a rebuild cause exactly one more), and streams are sent a table
 * only when its content (everything but `generatedAt`) changed. The check runs only while a stream
 * is open.
 */
import type { ServerResponse } from "node:http";
import type { FastifyReply } from "fastify";
import { RingfenceError } from "../lib/errors.js";
import type { ProcessReport, RoutingTable } from "../world/contracts.js";
import { KEEP_ALIVE_MS } from "./events.js";
import { buildRoutingTable, routingContentKey } from "./routing.js";
import type { Store } from "./store.js";
import type { WorldIndex } from "./world-index.js";

/** Default interval of the check for changes nobody announced. */
export const ROUTING_CHECK_MS = 500;

/** Default bound on concurrently open routing streams. */
export const MAX_ROUTING_STREAMS = 1_000;

/** Every this many checks, the table is rebuilt even when the cheap check saw no change. */
const FULL_REBUILD_EVERY = 10;

export interface RoutingFeedOptions {
  readonly index: WorldIndex;
  readonly store: Store;
  /** Milliseconds since the epoch. */
  readonly clock: () => number;
  readonly heartbeatTimeoutMs: number;
  /** Interval of the check for changes nobody announced; `ROUTING_CHECK_MS` by default. */
  readonly checkMs?: number;
  /** Most streams open at once; `MAX_ROUTING_STREAMS` by default. */
  readonly maxStreams?: number;
}

/** A distinct routing table and its SSE frame; `seq` grows with every distinct table. */
export interface RoutingFrame {
  readonly seq: number;
  readonly table: RoutingTable;
  readonly text: string;
}

/** What a stream is told. */
export interface RoutingListener {
  /** A table different from the previous one. */
  table(frame: RoutingFrame): void;
  /** The table cannot be rebuilt (the control database is away); said once per outage. */
  unavailable(reason: string): void;
  /** The controller is closing: end the stream. */
  end(): void;
}

/** The SSE frame of a table: one `routing` event with the table as JSON on one data line. */
export function formatRouting(table: RoutingTable): string {
  return `event: routing\ndata: ${JSON.stringify(table)}\n\n`;
}

/** What the current table was built from, to compare cheaply: the version and the reachable agents. */
function livenessKey(
  desiredVersion: number,
  agents: readonly { zone: string; lastHeartbeatMs: number }[],
  nowMs: number,
  timeoutMs: number,
): string {
  const reachable = agents
    .filter((a) => nowMs - a.lastHeartbeatMs <= timeoutMs)
    .map((a) => a.zone)
    .sort();
  return `${desiredVersion}|${reachable.join(",")}`;
}

export class RoutingFeed {
  readonly #options: RoutingFeedOptions;
  readonly #checkMs: number;
  readonly #maxStreams: number;
  readonly #listeners = new Set<RoutingListener>();
  #current: RoutingFrame | undefined;
  #contentKey: string | undefined;
  #livenessKey: string | undefined;
  #seq = 0;
  #running: Promise<void> | undefined;
  #again = false;
  #checking = false;
  #checks = 0;
  #failing = false;
  #timer: NodeJS.Timeout | undefined;

  constructor(options: RoutingFeedOptions) {
    this.#options = options;
    this.#checkMs = options.checkMs ?? ROUTING_CHECK_MS;
    this.#maxStreams = options.maxStreams ?? MAX_ROUTING_STREAMS;
  }

  /** Number of open streams. */
  get streams(): number {
    return this.#listeners.size;
  }

  /**
   * Adds a stream's listener until the returned function is called; fails with
   * `RINGFENCE_TOO_MANY_STREAMS` when `maxStreams` are open.
   */
  subscribe(listener: RoutingListener): () => void {
    if (this.#listeners.size >= this.#maxStreams) {
      throw new RingfenceError(
        "RINGFENCE_TOO_MANY_STREAMS",
        `the controller already serves ${this.#listeners.size} routing streams, its maximum; retry later or poll GET /v1/routing`,
      );
    }
    this.#listeners.add(listener);
    if (this.#timer === undefined) {
      this.#timer = setInterval(() => void this.#check(), this.#checkMs);
      this.#timer.unref();
    }
    return () => {
      this.#listeners.delete(listener);
      if (this.#listeners.size === 0 && this.#timer !== undefined) {
        clearInterval(this.#timer);
        this.#timer = undefined;
      }
    };
  }

  /** Rebuilds the table now and returns the newest frame; fails when the database is away. */
  async latest(): Promise<RoutingFrame> {
    await this.#refresh();
    const current = this.#current;
    if (!current) throw new RingfenceError("RINGFENCE_INTERNAL", "the routing table was not built");
    return current;
  }

  /** Something that can change the table committed: rebuild it for open streams. */
  notify(): void {
    if (this.#listeners.size === 0) return;
    this.#refresh().catch((err: unknown) => this.#unavailable(err));
  }

  /** An agent's report was stored: notify when it changes an instance's health in the current table. */
  heartbeat(zone: string, processes: readonly Pick<ProcessReport, "id" | "health">[]): void {
    const current = this.#current;
    if (this.#listeners.size === 0) return;
    // A rebuild in flight may have read the database before this report committed, and without a
    // current table there is nothing to compare with: rebuild once more to be sure.
    if (current === undefined || this.#running) {
      this.notify();
      return;
    }
    const reported = new Map(processes.map((p) => [p.id, p.health]));
    for (const p of this.#options.index.processesIn(zone)) {
      if (p.kind !== "instance") continue;
      if ((reported.get(p.id) ?? "unknown") !== current.table.health[p.slot]) {
        this.notify();
        return;
      }
    }
  }

  /** Ends every stream and stops checking (controller shutdown). */
  close(): void {
    for (const listener of [...this.#listeners]) listener.end();
    this.#listeners.clear();
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** Runs rebuilds one at a time; a call during a rebuild makes exactly one more follow it. */
  #refresh(): Promise<void> {
    if (this.#running) {
      this.#again = true;
      return this.#running;
    }
    const run = (async () => {
      try {
        do {
          this.#again = false;
          await this.#rebuild();
        } while (this.#again);
      } finally {
        this.#running = undefined;
      }
    })();
    this.#running = run;
    return run;
  }

  async #rebuild(): Promise<void> {
    const { index, store, clock, heartbeatTimeoutMs } = this.#options;
    const snapshot = await store.snapshot();
    const nowMs = clock();
    const table = buildRoutingTable(index, snapshot, nowMs, heartbeatTimeoutMs);
    this.#livenessKey = livenessKey(snapshot.desiredVersion, snapshot.agents, nowMs, heartbeatTimeoutMs);
    this.#failing = false;
    const contentKey = routingContentKey(table);
    if (this.#current !== undefined && contentKey === this.#contentKey) return;
    this.#contentKey = contentKey;
    const frame = { seq: ++this.#seq, table, text: formatRouting(table) };
    this.#current = frame;
    for (const listener of [...this.#listeners]) listener.table(frame);
  }

  async #check(): Promise<void> {
    if (this.#checking || this.#running || this.#listeners.size === 0) return;
    this.#checking = true;
    try {
      this.#checks++;
      let changed = this.#failing || this.#checks % FULL_REBUILD_EVERY === 0;
      if (!changed) {
        const { store, clock, heartbeatTimeoutMs } = this.#options;
        const live = await store.liveness();
        changed =
          livenessKey(live.desiredVersion, live.agents, clock(), heartbeatTimeoutMs) !== this.#livenessKey;
      }
      if (changed) await this.#refresh();
    } catch (err) {
      this.#unavailable(err);
    } finally {
      this.#checking = false;
    }
  }

  #unavailable(err: unknown): void {
    if (this.#failing) return;
    this.#failing = true;
    const reason = (err instanceof Error ? err.message : String(err)).split("\n")[0] ?? "";
    for (const listener of [...this.#listeners]) listener.unavailable(reason);
  }
}

/**
 * Serves a routing stream on `reply`: the newest table at once, then every different one, with a
 * keep-alive comment every `keepAliveMs`. Refused with 503 before anything is sent when `maxStreams`
 * are open or the control database is away. A client that reads slowly is sent only the newest
 * table once it catches up, so a stream never buffers more than one table.
 */
export async function streamRouting(
  reply: FastifyReply,
  feed: RoutingFeed,
  keepAliveMs = KEEP_ALIVE_MS,
): Promise<void> {
  const res: ServerResponse = reply.raw;
  let started = false;
  let closed = false;
  let sent = 0;
  let newest: RoutingFrame | undefined;
  let timer: NodeJS.Timeout | undefined;

  const flush = () => {
    if (!started || closed || newest === undefined || newest.seq <= sent || res.writableNeedDrain) return;
    sent = newest.seq;
    res.write(newest.text);
  };
  const cleanup = () => {
    if (closed) return;
    closed = true;
    if (timer !== undefined) clearInterval(timer);
    unsubscribe();
  };
  const offer = (frame: RoutingFrame) => {
    if (newest === undefined || frame.seq > newest.seq) newest = frame;
    flush();
  };
  const unsubscribe = feed.subscribe({
    table: offer,
    unavailable: (reason) => {
      if (started && !closed && !res.writableNeedDrain)
        res.write(`: routing table unavailable (${reason})\n\n`);
    },
    end: () => {
      cleanup();
      if (started) res.end();
    },
  });
  try {
    offer(await feed.latest());
  } catch (err) {
    cleanup();
    throw err;
  }
  reply.hijack();
  res.writeHead(200, {
    "content-type": "text/event-stream; charset=utf-8",
    "cache-control": "no-cache, no-transform",
    connection: "keep-alive",
    "x-accel-buffering": "no",
  });
  res.write("retry: 1000\n\n");
  if (closed) {
    // The controller began closing meanwhile: send the table, then end (the client reconnects).
    res.end(newest?.text);
    return;
  }
  started = true;
  // The response's close (not the request's) means the client left.
  res.on("close", cleanup);
  res.on("error", cleanup);
  res.on("drain", flush);
  if (res.destroyed) {
    cleanup();
    return;
  }
  timer = setInterval(() => {
    if (!closed && !res.writableNeedDrain) res.write(": keep-alive\n\n");
  }, keepAliveMs);
  flush();
}
