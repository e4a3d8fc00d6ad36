/**
 * The tries of one request after its first: retries of an idempotent request (or one with an
 * `Idempotency-Key`) on connect errors, resets and 502/503/504, each to an instance not tried yet
 * (the nearest region's least loaded, another zone on a tie: policy/balancer.ts), within the retry
 * budget, with jittered backoff that honours `Retry-After`, a per-try timeout and the request's
 * overall deadline; and hedging: a second try to another region once a read has waited the route's
 * p95 (policy/latency.ts decides which requests and after how long), the slower one cancelled.
 *
 * The first try itself is made by the server on callbacks (its fast path); a first try that did not
 * answer well is handed here as a {@link FirstTry}.
 */
import type { Topology } from "../topology/model.js";
import type { OutgoingResponse } from "./downstream/http-server.js";
import { headerValue, responseHeaders } from "./headers.js";
import {
  hedgeDelayMs,
  type LatencyTracker,
  type OutlierDetector,
  parseRetryAfter,
  type RetryBudget,
  retryDelayMs,
} from "./policy/index.js";
import type { Exchange, UpstreamError, UpstreamRequest } from "./upstream/pool.js";
import type { Candidates, Upstream, Upstreams } from "./upstreams.js";

export const IDEMPOTENT: ReadonlySet<string> = new Set(["GET", "HEAD", "PUT", "DELETE", "OPTIONS"]);
export const RETRYABLE_STATUS: ReadonlySet<number> = new Set([502, 503, 504]);

/** Reports one answered request to telemetry. */
export type RecordFn = (status: number, regionServed: string, retries: number) => void;

/** No instance tried yet. */
const NOT_TRIED: ReadonlySet<string> = new Set();

/** What every try of one request shares. */
export interface AttemptArgs {
  readonly groups: Candidates;
  readonly request: UpstreamRequest;
  readonly idempotent: boolean;
  readonly match: { readonly route: string; readonly hedge: boolean; readonly service: string };
  readonly cell: string;
  readonly fallback: boolean;
}

/** A response head from an upstream, its body still to read. */
export interface UpstreamAnswer {
  readonly kind: "response";
  readonly upstream: Upstream;
  readonly status: number;
  /** Flat `[name, value, …]`, as received. */
  readonly headers: string[];
  readonly exchange: Exchange;
}

/** How one try ended: a response head, or an error before it. */
export type AttemptResult =
  | UpstreamAnswer
  | { kind: "error"; upstream: Upstream; error: Error & { code?: string }; notSent: boolean };

/** A first try that did not answer well, for {@link Attempts.run} to go on from. */
export interface FirstTry {
  readonly upstream: Upstream;
  readonly result: AttemptResult;
  readonly started: number;
}

/** An answer to pass on to the client (after `retries` retries), or why there is none. */
export type Outcome =
  | (UpstreamAnswer & { readonly retries: number })
  | { kind: "failed"; status: number; code: string; message: string; retries: number };

export interface AttemptsDeps {
  readonly topology: Topology;
  readonly upstreams: Upstreams;
  readonly budget: RetryBudget;
  readonly outliers: OutlierDetector;
  /** The latency tracker of a route (its p95 is the hedging delay). */
  readonly tracker: (route: string) => LatencyTracker;
}

export class Attempts {
  readonly #topology: Topology;
  readonly #upstreams: Upstreams;
  readonly #budget: RetryBudget;
  readonly #outliers: OutlierDetector;
  readonly #tracker: (route: string) => LatencyTracker;

  constructor(deps: AttemptsDeps) {
    this.#topology = deps.topology;
    this.#upstreams = deps.upstreams;
    this.#budget = deps.budget;
    this.#outliers = deps.outliers;
    this.#tracker = deps.tracker;
  }

  /**
   * The first try, on callbacks: a good answer is written to the client from within the upstream's
   * read, before any bookkeeping (`done("answered")` once its body is through). A failed try comes
   * back through `done` for {@link run} to judge and retry; undefined when there is no
   * instance to try.
   */
  first(
    args: AttemptArgs,
    res: OutgoingResponse,
    deadline: number,
    record: RecordFn,
    done: (first: FirstTry | "answered" | undefined) => void,
  ): void {
    const upstream = this.#upstreams.choose(args.groups, NOT_TRIED, undefined);
    if (!upstream) {
      done(undefined);
      return;
    }
    const { tryTimeoutMs, maxAttempts } = this.#topology.routers;
    const timeoutMs = Math.min(deadline - performance.now(), tryTimeoutMs);
    const started = performance.now();
    upstream.outstanding++;
    const exchange = upstream.pool.request(
      args.request,
      { headersTimeoutMs: timeoutMs, bodyTimeoutMs: timeoutMs },
      (error, head) => {
        upstream.outstanding--;
        if (error || !head) {
          const failure = error as UpstreamError;
          return done({
            upstream,
            started,
            result: { kind: "error", upstream, error: failure, notSent: failure.notSent },
          });
        }
        const { status, headers } = head;
        const failed = RETRYABLE_STATUS.has(status);
        if (failed && args.idempotent && maxAttempts > 1) {
          return done({
            upstream,
            started,
            result: { kind: "response", upstream, status, headers, exchange },
          });
        }
        // The answer leaves first; the trackers learn of it after.
        const headMs = performance.now() - started;
        this.answer(res, { kind: "response", upstream, status, headers, exchange, retries: 0 }, record, () =>
          done("answered"),
        );
        if (failed) this.#outliers.recordFailure(upstream.slot.id);
        else {
          this.#outliers.recordSuccess(upstream.slot.id);
          this.#tracker(args.match.route).record(headMs);
        }
      },
    );
  }

  /** Writes an upstream's answer to the client; `done` runs once its body is through. */
  answer(
    res: OutgoingResponse,
    answer: UpstreamAnswer & { readonly retries: number },
    record: RecordFn,
    done: () => void,
  ): void {
    const out = responseHeaders(answer.headers);
    out.push("x-ringfence-cell", answer.upstream.slot.cell, "x-ringfence-served-by", answer.upstream.slot.id);
    if (answer.retries > 0) out.push("x-ringfence-retries", String(answer.retries));
    res.writeHead(answer.status, out);
    answer.exchange.pipe(res, () => {
      record(answer.status, answer.upstream.slot.region, answer.retries);
      done();
    });
  }

  /** Tries (after `first`, when the fast path made it) until an answer to pass on, or none is left. */
  async run(args: AttemptArgs, deadline: number, first: FirstTry | undefined): Promise<Outcome> {
    const topology = this.#topology;
    const tried = new Set<string>();
    let previous: Upstream | undefined;
    let retries = 0;
    let previousNotSent = false;
    let last = "no attempt made";
    const tracker = this.#tracker(args.match.route);
    for (let attempt = 0; attempt < topology.routers.maxAttempts; attempt++) {
      let result: AttemptResult;
      let started: number;
      if (attempt === 0 && first !== undefined) {
        // The first try was made on the fast path (#firstTry) and did not answer well.
        tried.add(first.upstream.slot.id);
        result = first.result;
        started = first.started;
      } else {
        const upstream = this.#upstreams.choose(args.groups, tried, previous);
        if (!upstream) break;
        // The budget protects upstreams from extra load; a try whose connection was refused added
        // none (nothing listened), so the try after it is free.
        const budgeted = attempt > 0 && !previousNotSent;
        if (budgeted && !this.#budget.tryAcquireRetry()) {
          last = `${last}; retry budget exhausted`;
          break;
        }
        if (attempt > 0) retries++;
        tried.add(upstream.slot.id);
        const remaining = deadline - performance.now();
        if (remaining <= 0) {
          if (budgeted) this.#budget.retryFinished();
          last = `${last}; overall deadline of ${topology.routers.deadlineMs} ms passed`;
          break;
        }
        const hedgeAfter = hedgeDelayMs(args.request.method, args.match, tracker);
        const timeoutMs = Math.min(remaining, topology.routers.tryTimeoutMs);
        started = performance.now();
        result =
          hedgeAfter !== undefined
            ? await this.#hedged(upstream, args, timeoutMs, hedgeAfter, tried)
            : await this.#send(upstream, args.request, timeoutMs, attempt);
        if (budgeted) this.#budget.retryFinished();
      }
      previous = result.upstream;
      previousNotSent = result.kind === "error" && result.notSent;
      if (result.kind === "response") {
        const failed = RETRYABLE_STATUS.has(result.status);
        if (failed) this.#outliers.recordFailure(result.upstream.slot.id);
        else {
          this.#outliers.recordSuccess(result.upstream.slot.id);
          tracker.record(performance.now() - started);
        }
        if (!failed || !args.idempotent || attempt === topology.routers.maxAttempts - 1) {
          return {
            kind: "response",
            upstream: result.upstream,
            status: result.status,
            headers: result.headers,
            exchange: result.exchange,
            retries,
          };
        }
        result.exchange.discard();
        last = `${result.upstream.slot.id} answered ${result.status}`;
        const retryAfter = parseRetryAfter(headerValue(result.headers, "retry-after"), Date.now());
        await sleep(Math.min(retryAfter ?? retryDelayMs(attempt), Math.max(0, deadline - performance.now())));
        continue;
      }
      this.#outliers.recordFailure(result.upstream.slot.id);
      last = `${result.upstream.slot.id}: ${result.error.code ?? result.error.message}`;
      if (!args.idempotent && !result.notSent) {
        return {
          kind: "failed",
          status: 502,
          code: "RINGFENCE_UPSTREAM_FAILED",
          message: `${last} (not retried: the request is not idempotent and may have been received)`,
          retries,
        };
      }
      await sleep(Math.min(retryDelayMs(attempt), Math.max(0, deadline - performance.now())));
    }
    return {
      kind: "failed",
      status: 503,
      code: "RINGFENCE_NO_HEALTHY_INSTANCE",
      message: `no instance of ${args.match.service} in ${args.cell} answered: ${last}`,
      retries,
    };
  }

  /**
   * A try, and if it has not answered after `hedgeAfterMs`, a second one to another region. The
   * first good answer wins and the other try is cancelled; a failed try waits for the other.
   */
  async #hedged(
    primary: Upstream,
    args: AttemptArgs,
    timeoutMs: number,
    hedgeAfterMs: number,
    tried: Set<string>,
  ): Promise<AttemptResult> {
    const good = (r: AttemptResult) => r.kind === "response" && !RETRYABLE_STATUS.has(r.status);
    let primaryExchange: Exchange | undefined;
    const first = this.#send(primary, args.request, timeoutMs, 0, (e) => {
      primaryExchange = e;
    }).then((r) => ({ from: "primary" as const, r }));
    let hedgeExchange: Exchange | undefined;
    // The started hedge travels wrapped in an object: a promise resolved with a promise would be
    // flattened, and awaiting "started" would wait for the hedge to finish.
    type Hedge = { readonly done: Promise<{ from: "hedge"; r: AttemptResult }> } | undefined;
    let startHedge: (h: Hedge) => void = () => {};
    const hedgeStarted = new Promise<Hedge>((resolve) => {
      startHedge = resolve;
    });
    const timer = setTimeout(() => {
      const other = args.groups
        .flat()
        .find((u) => u.slot.region !== primary.slot.region && !tried.has(u.slot.id));
      if (!other || !this.#budget.tryAcquireRetry()) return startHedge(undefined);
      tried.add(other.slot.id);
      const hedge = this.#send(other, args.request, timeoutMs, 1, (e) => {
        hedgeExchange = e;
      })
        .finally(() => this.#budget.retryFinished())
        .then((r) => ({ from: "hedge" as const, r }));
      startHedge({ done: hedge });
    }, hedgeAfterMs);
    const early = await Promise.race([first, hedgeStarted.then(() => undefined)]);
    if (early) {
      clearTimeout(timer);
      return early.r;
    }
    const started = await hedgeStarted;
    if (!started) return (await first).r;
    const hedge = started.done;
    const a = await Promise.race([first, hedge]);
    const other = a.from === "primary" ? hedge : first;
    const cancelOther = () => {
      (a.from === "primary" ? hedgeExchange : primaryExchange)?.abort();
      void other.then(({ r }) => {
        if (r.kind === "response") r.exchange.discard();
      });
    };
    if (good(a.r)) {
      cancelOther();
      return a.r;
    }
    const b = await other;
    if (good(b.r)) {
      if (a.r.kind === "response") a.r.exchange.discard();
      return b.r;
    }
    if (b.r.kind === "response") b.r.exchange.discard();
    return a.r;
  }

  /** One try: resolves with the response head, or the error that ended the try before it. */
  #send(
    upstream: Upstream,
    request: UpstreamRequest,
    timeoutMs: number,
    attempt = 0,
    started?: (exchange: Exchange) => void,
  ): Promise<AttemptResult> {
    upstream.outstanding++;
    const sent: UpstreamRequest =
      attempt === 0
        ? request
        : { ...request, headerLines: `${request.headerLines}x-ringfence-attempt: ${attempt}\r\n` };
    return new Promise((resolve) => {
      const exchange = upstream.pool.request(
        sent,
        { headersTimeoutMs: timeoutMs, bodyTimeoutMs: timeoutMs },
        (error, head) => {
          upstream.outstanding--;
          if (error || !head)
            resolve({ kind: "error", upstream, error: error as Error, notSent: error?.notSent ?? false });
          else resolve({ kind: "response", upstream, status: head.status, headers: head.headers, exchange });
        },
      );
      started?.(exchange);
    });
  }
}

function sleep(ms: number): Promise<void> {
  return ms <= 0 ? Promise.resolve() : new Promise((r) => setTimeout(r, ms));
}
