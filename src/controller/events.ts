/**
 * The live side of the event log: a feed that wakes streams when events were committed, and the
 * server-sent-events stream of `GET /v1/events/stream`. A stream never holds events in memory: it
 * keeps a cursor (the last id it sent) and reads what follows from the database whenever woken, so
 * it neither skips nor repeats an event, also across a control-database outage.
 */
import type { ServerResponse } from "node:http";
import type { FastifyReply } from "fastify";
import type { WorldEvent } from "../world/contracts.js";
import type { Store } from "./store.js";

/** Default interval of `: keep-alive` comments, which stop proxies from closing an idle stream. */
export const KEEP_ALIVE_MS = 15_000;

const BATCH = 500;

/** Wakes live streams; every subscription is a function that disposes it. */
export class EventFeed {
  readonly #listeners = new Set<() => void>();
  readonly #streams = new Set<() => void>();

  /** Called after events were committed. */
  notify(): void {
    for (const listener of [...this.#listeners]) listener();
  }

  /** Calls `listener` on every `notify()` until the returned function is called. */
  subscribe(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Number of live subscriptions (streams hold one each). */
  get subscribers(): number {
    return this.#listeners.size;
  }

  /** Ends every open stream (controller shutdown). */
  closeAll(): void {
    for (const end of [...this.#streams]) end();
  }

  /** @internal Registers a stream's end function for `closeAll`. */
  track(end: () => void): () => void {
    this.#streams.add(end);
    return () => this.#streams.delete(end);
  }
}

/** One event in the SSE wire format. */
export function formatEvent(event: WorldEvent): string {
  return `id: ${event.id}\nevent: ${event.kind}\ndata: ${JSON.stringify(event)}\n\n`;
}

/** The event id to resume after: `Last-Event-ID` (set by reconnecting browsers) wins over `?after=`. */
export function resumeAfter(
  lastEventId: string | string[] | undefined,
  after: string | undefined,
): number | undefined {
  const header = Array.isArray(lastEventId) ? lastEventId[0] : lastEventId;
  if (header !== undefined && /^\d{1,15}$/.test(header.trim())) return Number(header.trim());
  if (after !== undefined) return Number(after);
  return undefined;
}

/**
 * Serves an SSE stream on `reply`: events after `after` (or only new ones when undefined), then
 * every event committed while the client stays, with a keep-alive comment every `keepAliveMs`.
 * Everything it set up is released when the client goes away or `feed.closeAll()` runs.
 */
export async function streamEvents(
  reply: FastifyReply,
  store: Store,
  feed: EventFeed,
  after: number | undefined,
  keepAliveMs = KEEP_ALIVE_MS,
): Promise<void> {
  // Read before taking over the response, so an unavailable database is an ordinary 503.
  let cursor = after ?? (await store.lastEventId());
  reply.hijack();
  const res: ServerResponse = reply.raw;
  res.writeHead(200, {
    "content-type": "text/event-stream; charset=utf-8",
    "cache-control": "no-cache, no-transform",
    connection: "keep-alive",
    "x-accel-buffering": "no",
  });
  res.write(`retry: 1000\n: streaming events after ${cursor}\n\n`);

  let closed = false;
  let pumping = false;
  let again = false;
  let warned = false;
  const drained = () =>
    new Promise<void>((resolve) => {
      const done = () => {
        res.off("drain", done);
        res.off("close", done);
        resolve();
      };
      res.once("drain", done);
      res.once("close", done);
    });

  const pump = async (): Promise<void> => {
    if (pumping) {
      again = true;
      return;
    }
    pumping = true;
    try {
      do {
        again = false;
        let batch: WorldEvent[];
        do {
          batch = await store.events(cursor, BATCH);
          for (const event of batch) {
            if (closed) return;
            res.write(formatEvent(event));
            cursor = event.id;
          }
          if (res.writableNeedDrain && !closed) await drained();
        } while (batch.length === BATCH && !closed);
      } while (again && !closed);
      warned = false;
    } catch (err) {
      // The database is away: say so once and try again on the next wake-up or keep-alive.
      if (!closed && !warned)
        res.write(`: events unavailable (${(err as Error).message.split("\n")[0]})\n\n`);
      warned = true;
    } finally {
      pumping = false;
    }
  };

  const unsubscribe = feed.subscribe(() => void pump());
  const timer = setInterval(() => {
    if (closed) return;
    res.write(": keep-alive\n\n");
    void pump();
  }, keepAliveMs);
  const cleanup = () => {
    if (closed) return;
    closed = true;
    clearInterval(timer);
    unsubscribe();
    untrack();
  };
  const untrack = feed.track(() => {
    cleanup();
    res.end();
  });
  // The response's close (not the request's, which fires once its body is read) means the client left.
  res.on("close", cleanup);
  res.on("error", cleanup);
  await pump();
}
