/**
 * An agent's desired state, fetched by long poll: `GET /v1/agents/:zone/desired?after=<version>&waitMs=…`
 * is answered by the controller as soon as its version passes the one held here (or after `waitMs`
 * with the same state), so a change reaches the agent within milliseconds. A controller that answers
 * at once anyway (one that does not hold requests) is asked about once a `pauseMs`, never in a loop;
 * an unreachable one too.
 */
import { httpRequest } from "../lib/http-request.js";
import type { DesiredState } from "../world/contracts.js";

export interface DesiredFeedOptions {
  readonly controllerUrl: string;
  readonly agentToken: string;
  readonly zone: string;
  /** How long the controller may hold a request. Default 10 s (the request times out 2 s later). */
  readonly waitMs?: number;
  /** The pause after an answer with nothing new that came at once, or after a failure. Default 1 s. */
  readonly pauseMs?: number;
  /** The version held now (undefined before the first desired state). */
  readonly held: () => number | undefined;
  /** Each answer, with whether its version differs from the one held when it was asked for. */
  readonly onAnswer: (desired: DesiredState, changed: boolean) => void;
  /** A failed request (the controller unreachable, or answering an error). */
  readonly onFailure: (err: Error) => void;
}

/** An answer faster than this with nothing new means the controller does not hold requests open. */
const HELD_AT_LEAST_MS = 200;

export class DesiredFeed {
  #options: DesiredFeedOptions;
  #stop = new AbortController();
  #loop: Promise<void> | undefined;

  constructor(options: DesiredFeedOptions) {
    this.#options = options;
  }

  /** One request: a long poll past version `after`, or an immediate answer without one. */
  async fetch(poll: { after: number; waitMs: number } | undefined, timeoutMs: number): Promise<DesiredState> {
    const { controllerUrl, agentToken, zone } = this.#options;
    const query = poll === undefined ? "" : `?after=${poll.after}&waitMs=${poll.waitMs}`;
    const res = await httpRequest(`${controllerUrl}/v1/agents/${encodeURIComponent(zone)}/desired${query}`, {
      headers: { authorization: `Bearer ${agentToken}` },
      signal: AbortSignal.any([this.#stop.signal, AbortSignal.timeout(timeoutMs)]),
    });
    if (!res.ok) {
      await res.drain();
      throw new Error(`controller answered ${res.status}`);
    }
    return await res.json<DesiredState>();
  }

  /** Polls until `stop`. */
  start(): void {
    this.#loop ??= this.#run();
  }

  /** Ends the loop, aborting a request held by the controller. */
  async stop(): Promise<void> {
    this.#stop.abort();
    await this.#loop;
  }

  async #run(): Promise<void> {
    const waitMs = this.#options.waitMs ?? 10_000;
    const pauseMs = this.#options.pauseMs ?? 1_000;
    const stop = this.#stop.signal;
    while (!stop.aborted) {
      const started = Date.now();
      const held = this.#options.held();
      let pause = 0;
      try {
        const desired = await this.fetch(
          held === undefined ? undefined : { after: held, waitMs },
          waitMs + 2_000,
        );
        if (stop.aborted) break;
        const changed = desired.version !== held;
        this.#options.onAnswer(desired, changed);
        // The controller answered at once with nothing new: it does not hold requests (yet).
        if (!changed && Date.now() - started < HELD_AT_LEAST_MS) pause = pauseMs;
      } catch (err) {
        if (stop.aborted) break;
        this.#options.onFailure(err as Error);
        pause = Math.max(0, pauseMs - (Date.now() - started));
      }
      if (pause > 0) await sleep(pause, stop);
    }
  }
}

/** Waits `ms`, or less when `signal` aborts. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });
}
