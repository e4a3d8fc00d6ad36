/**
 * An agent's view of the cells' primaries in other regions: every half second it runs `SELECT 1` on
 * each of them through the WAN, over one persistent connection per primary with short timeouts, so
 * the controller can tell a dead or isolated primary (observers in several regions fail) from a
 * partition that isolates only the controller or one observer.
 *
 * A target is reported once this observer has reached it at least once (since it became the
 * target): before that, failing probes say nothing about the primary that "lost" does not also say
 * about one still starting (a world coming up, an agent restarted before the far regions' databases),
 * and reporting them would have the controller fail over primaries that were never up.
 *
 * Each result is dated on this process's monotonic clock (a failure from when its probe began, a
 * success from when the answer came) and reported with its age, so the controller judges it by when
 * it was observed. Two things a paused or starved observer sees are not failures of the primary:
 * a probe that took longer than its own timeouts allow (its timer fired late, perhaps before the
 * answer waiting in the socket was read: the observer was stopped or starved) is dropped, and a
 * failure streak is not carried over a gap of more than `streakGapMs` between probes.
 */
import type pg from "pg";
import { pgClient } from "../lib/postgres.js";
import type { ObserverProbe } from "../world/contracts.js";
import type { Endpoint } from "../world/layout.js";

export interface ObserverTarget {
  /** The database slot id, `cell-0/us-east`. */
  readonly id: string;
  /** Where this agent reaches it (its region's end of the WAN link). */
  readonly endpoint: Endpoint;
}

export interface ObserverOptions {
  /** The primaries to probe now (re-read every round). */
  readonly targets: () => readonly ObserverTarget[];
  /** Time between rounds. Default 500 ms. */
  readonly intervalMs?: number;
  /** Connection timeout. Default 800 ms. */
  readonly connectTimeoutMs?: number;
  /** Query timeout. Default 800 ms. */
  readonly queryTimeoutMs?: number;
  /**
   * A gap between probes of a target longer than this starts a new failure streak. Default: the
   * longest a probe may take (both timeouts and the slack) plus two intervals, 3.1 s.
   */
  readonly streakGapMs?: number;
  /** Called when a probe fails (`consecutiveFailures` grows) or a failing target answers again. */
  readonly onChange?: () => void;
  readonly now?: () => number;
}

/** How much later than its timeouts a failed probe may end before it counts as stalled. */
const STALL_SLACK_MS = 500;

interface TargetState {
  endpoint: Endpoint;
  client: pg.Client | undefined;
  inFlight: Promise<void> | undefined;
  last: ObserverProbe | undefined;
  /** When `last` was observed, on the monotonic clock. */
  observedAtMs: number;
  /** Whether a probe of this target ever succeeded. */
  reached: boolean;
}

export class PrimaryObserver {
  #options: ObserverOptions;
  #now: () => number;
  #targets = new Map<string, TargetState>();
  #timer: NodeJS.Timeout | undefined;
  #running = false;

  constructor(options: ObserverOptions) {
    this.#options = options;
    this.#now = options.now ?? (() => performance.now());
  }

  /** Probes every `intervalMs` until `stop`. */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    const loop = () => {
      if (!this.#running) return;
      void this.round();
      this.#timer = setTimeout(loop, this.#options.intervalMs ?? 500);
    };
    loop();
  }

  /** Stops probing and closes the connections. */
  async stop(): Promise<void> {
    this.#running = false;
    if (this.#timer) clearTimeout(this.#timer);
    await Promise.all([...this.#targets.values()].map((t) => t.inFlight));
    for (const t of this.#targets.values()) this.#drop(t);
    this.#targets.clear();
  }

  /**
   * The last result per target reached at least once, in target order, each with its age at
   * `nowMs` (the monotonic time the report is sent at; default now).
   */
  observations(nowMs: number = this.#now()): ObserverProbe[] {
    return [...this.#targets.values()].flatMap((t) =>
      t.last && t.reached ? [{ ...t.last, ageMs: Math.max(0, Math.round(nowMs - t.observedAtMs)) }] : [],
    );
  }

  /**
   * Starts one round: a probe of every current target that has none in flight (a hung primary
   * holds its own probe up to the timeouts, never the others'). Resolves when they finish.
   */
  round(): Promise<void> {
    const wanted = new Map(this.#options.targets().map((t) => [t.id, t]));
    for (const [id, state] of this.#targets) {
      const target = wanted.get(id);
      if (
        !target ||
        target.endpoint.host !== state.endpoint.host ||
        target.endpoint.port !== state.endpoint.port
      ) {
        this.#drop(state);
        this.#targets.delete(id);
      }
    }
    const probes: Promise<void>[] = [];
    for (const [id, target] of wanted) {
      let state = this.#targets.get(id);
      if (!state) {
        state = {
          endpoint: target.endpoint,
          client: undefined,
          inFlight: undefined,
          last: undefined,
          observedAtMs: 0,
          reached: false,
        };
        this.#targets.set(id, state);
      }
      if (state.inFlight) continue;
      const s = state;
      s.inFlight = this.#probe(id, s).finally(() => {
        s.inFlight = undefined;
      });
      probes.push(s.inFlight);
    }
    return Promise.all(probes).then(() => {});
  }

  async #probe(id: string, state: TargetState): Promise<void> {
    const connectMs = this.#options.connectTimeoutMs ?? 800;
    const queryMs = this.#options.queryTimeoutMs ?? 800;
    const streakGapMs =
      this.#options.streakGapMs ??
      connectMs + queryMs + STALL_SLACK_MS + 2 * (this.#options.intervalMs ?? 500);
    const gapped = state.last !== undefined && this.#now() - state.observedAtMs > streakGapMs;
    const before = gapped ? undefined : state.last;
    // The longest a probe can take while this process runs on time.
    const limitMs = (state.client ? 0 : connectMs) + queryMs + STALL_SLACK_MS;
    const began = this.#now();
    let next: ObserverProbe;
    let observedAtMs: number;
    try {
      if (!state.client) {
        const client = pgClient(state.endpoint.host, state.endpoint.port, "postgres", {
          connectionTimeoutMillis: connectMs,
          query_timeout: queryMs,
          application_name: "ringfence_observer",
        });
        client.on("error", () => {});
        state.client = client;
        await client.connect();
      }
      const started = this.#now();
      await state.client.query("SELECT 1");
      observedAtMs = this.#now();
      const latencyMs = Math.round((observedAtMs - started) * 10) / 10;
      next = { target: id, ok: true, consecutiveFailures: 0, latencyMs, detail: "" };
    } catch (err) {
      this.#drop(state); // a fresh connection next time
      // Stopped or starved meanwhile: the timeout says nothing about the primary.
      if (this.#now() - began > limitMs) return;
      observedAtMs = began;
      next = {
        target: id,
        ok: false,
        consecutiveFailures: (before?.consecutiveFailures ?? 0) + 1,
        latencyMs: null,
        detail: (err as Error).message || String(err),
      };
    }
    if (this.#targets.get(id) !== state) return; // dropped meanwhile: the target moved
    state.last = next;
    state.observedAtMs = observedAtMs;
    const firstContact = next.ok && !state.reached;
    state.reached ||= next.ok;
    if (!state.reached) return; // not reported yet: nothing the controller needs to hear at once
    const failed = !next.ok;
    const recovered = next.ok && before !== undefined && !before.ok && !firstContact;
    if (failed || recovered) this.#options.onChange?.();
  }

  #drop(state: TargetState): void {
    const client = state.client;
    state.client = undefined;
    // end() destroys the socket of a hung query; nothing to wait for.
    void client?.end().catch(() => {});
  }
}
