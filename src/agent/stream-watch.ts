/**
 * When a standby that does not stream from its primary has to be repaired, and how. A repointed
 * standby gets `repointTimeoutMs` (5 s) to stream from its new primary; otherwise it gets
 * `stuckAfterMs` (15 s, longer than PostgreSQL's 5 s between WAL receiver attempts, so that a
 * restarted primary is not taken for a lost one). The clock runs only while the primary answers as
 * a primary: there is nothing to repair against otherwise. The first repair is a rewind; when the
 * standby still does not stream after it, the next is a fresh copy. Pure: time is passed in.
 */

export type StandbyRepairKind = "rewind" | "reclone";

export interface StreamWatchOptions {
  /** Default 5 s. */
  readonly repointTimeoutMs?: number;
  /** Default 15 s. */
  readonly stuckAfterMs?: number;
}

export class StreamWatch {
  #repointTimeoutMs: number;
  #stuckAfterMs: number;
  #since: number | undefined;
  #repointed = false;
  #repairs = 0;

  constructor(options: StreamWatchOptions = {}) {
    this.#repointTimeoutMs = options.repointTimeoutMs ?? 5_000;
    this.#stuckAfterMs = options.stuckAfterMs ?? 15_000;
  }

  /** The standby was pointed at a new primary at `now`. */
  repointed(now: number): void {
    this.#repointed = true;
    this.#since = now;
  }

  /** The standby (re)started: it gets the full time to connect again. Repairs made still count. */
  restarted(): void {
    this.#repointed = false;
    this.#since = undefined;
  }

  /** It streams from its primary, or is a primary now: all clear. */
  healthy(): void {
    this.#repointed = false;
    this.#since = undefined;
    this.#repairs = 0;
  }

  /**
   * It does not stream from its primary at `now`; `primaryReady` says whether that primary answers
   * as a primary. Returns the repair to make now, or undefined to keep waiting.
   */
  notStreaming(
    now: number,
    primaryReady: boolean,
  ): { readonly repair: StandbyRepairKind; readonly waitedMs: number } | undefined {
    if (!primaryReady) {
      this.#since = now;
      return undefined;
    }
    this.#since ??= now;
    const waitedMs = now - this.#since;
    if (waitedMs < (this.#repointed ? this.#repointTimeoutMs : this.#stuckAfterMs)) return undefined;
    const repair: StandbyRepairKind = this.#repairs >= 1 ? "reclone" : "rewind";
    this.#repairs++;
    this.restarted();
    return { repair, waitedMs };
  }
}
