/**
 * Long polls of the desired state: an agent asks with the version it runs (`?after=N`) and the
 * answer waits until the version moves past it (or `waitMs`), so a change (a fence, a new primary)
 * reaches every agent within milliseconds instead of at its next poll.
 */

/** The longest an agent's request is held. */
export const MAX_DESIRED_WAIT_MS = 30_000;

export class DesiredWaiters {
  #waiting = new Set<() => void>();

  /** Wakes every waiting request (after a transaction that bumped the desired version committed). */
  notify(): void {
    const woken = [...this.#waiting];
    this.#waiting.clear();
    for (const wake of woken) wake();
  }

  /**
   * Resolves once `version()` exceeds `after`, or after `waitMs`, or when `signal` aborts (the
   * agent went away), whichever is first.
   */
  async until(
    after: number,
    waitMs: number,
    version: () => Promise<number>,
    signal?: AbortSignal,
  ): Promise<void> {
    const deadline = Date.now() + Math.min(Math.max(0, waitMs), MAX_DESIRED_WAIT_MS);
    for (;;) {
      // Registered before reading, so a change between the read and the wait is not missed.
      let wake: () => void = () => {};
      const woken = new Promise<void>((resolve) => {
        wake = resolve;
      });
      this.#waiting.add(wake);
      try {
        if ((await version()) > after) return;
        const left = deadline - Date.now();
        if (left <= 0 || signal?.aborted) return;
        let timer: NodeJS.Timeout | undefined;
        const aborted = () => wake();
        signal?.addEventListener("abort", aborted, { once: true });
        await Promise.race([
          woken,
          new Promise<void>((resolve) => {
            timer = setTimeout(resolve, left);
          }),
        ]);
        clearTimeout(timer);
        signal?.removeEventListener("abort", aborted);
      } finally {
        this.#waiting.delete(wake);
      }
    }
  }

  /** Wakes and forgets every waiting request (the controller is closing). */
  close(): void {
    this.notify();
  }
}
