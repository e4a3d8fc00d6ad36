/**
 * A supervised child process: started, watched, and restarted with exponential backoff when it
 * exits unasked. Its state is one of STARTING (spawned, not yet confirmed), RUNNING, BACKOFF
 * (waiting to restart), STOPPED (asked to stop) or FAILED (could not even be spawned and gave up).
 */
import type { ChildProcess } from "node:child_process";

export type SupervisedState = "starting" | "running" | "backoff" | "stopped" | "failed";

export interface SupervisorEvent {
  readonly kind: "started" | "exited" | "restart-scheduled" | "stopped" | "spawn-failed";
  readonly id: string;
  readonly message: string;
  readonly data: Record<string, unknown>;
}

export interface SupervisorOptions {
  /** Stable id, e.g. `instance:directory/cell-0/us-east/1`. */
  readonly id: string;
  /**
   * Work before each start (create a data directory, wait for a dependency); a throw counts as a
   * failed start and is retried with backoff.
   */
  readonly prepare?: () => Promise<void>;
  /** Spawns the process, synchronously so that its error and exit handlers attach in time. */
  readonly spawn: () => ChildProcess;
  /** First restart delay. Default 250 ms. */
  readonly initialBackoffMs?: number;
  /** Longest restart delay. Default 10 s. */
  readonly maxBackoffMs?: number;
  /** A run this long resets the backoff. Default 30 s. */
  readonly stableAfterMs?: number;
  /** Signal asking for a graceful stop. Default SIGTERM. */
  readonly stopSignal?: NodeJS.Signals;
  /** How long a graceful stop may take before SIGKILL. Default 10 s. */
  readonly stopGraceMs?: number;
  /** Extra work after a graceful stop signal fails to end the process, e.g. killing a tree. */
  readonly forceKill?: (child: ChildProcess) => void;
  readonly onEvent?: (event: SupervisorEvent) => void;
}

export class Supervised {
  readonly id: string;
  #options: SupervisorOptions;
  #child: ChildProcess | undefined;
  #state: SupervisedState = "stopped";
  #restarts = 0;
  #backoffMs: number;
  #timer: NodeJS.Timeout | undefined;
  #startedAt = 0;
  #since = new Date();
  #lastExit: string | undefined;
  #wanted = false;

  constructor(options: SupervisorOptions) {
    this.id = options.id;
    this.#options = options;
    this.#backoffMs = options.initialBackoffMs ?? 250;
  }

  get state(): SupervisedState {
    return this.#state;
  }
  get pid(): number | null {
    return this.#child?.pid ?? null;
  }
  get restarts(): number {
    return this.#restarts;
  }
  get since(): Date {
    return this.#since;
  }
  get lastExit(): string | undefined {
    return this.#lastExit;
  }
  get child(): ChildProcess | undefined {
    return this.#child;
  }

  /** Starts the process (no-op when already wanted). */
  start(): void {
    if (this.#wanted) return;
    this.#wanted = true;
    void this.#spawn();
  }

  /** Marks it running (e.g. once a health probe passes); `starting` until then. */
  markRunning(): void {
    if (this.#state === "starting") this.#setState("running");
  }

  async #spawn(): Promise<void> {
    if (!this.#wanted) return;
    this.#setState("starting");
    let child: ChildProcess;
    try {
      await this.#options.prepare?.();
      if (!this.#wanted) return;
      child = this.#options.spawn();
    } catch (err) {
      this.#emit("spawn-failed", `could not start: ${(err as Error).message}`, {});
      this.#scheduleRestart();
      return;
    }
    if (!this.#wanted) {
      child.kill("SIGKILL");
      return;
    }
    this.#child = child;
    this.#startedAt = Date.now();
    this.#emit("started", `started (pid ${child.pid})`, { pid: child.pid });
    child.once("error", (err) => {
      // spawn errors (ENOENT) arrive here and are followed by no exit event on some versions
      if (this.#child === child && child.pid === undefined) {
        this.#child = undefined;
        this.#emit("spawn-failed", `could not start: ${err.message}`, {});
        this.#scheduleRestart();
      }
    });
    child.once("exit", (code, signal) => {
      if (this.#child !== child) return;
      this.#child = undefined;
      this.#lastExit = signal ? `signal ${signal}` : `exit code ${code}`;
      if (!this.#wanted) return;
      this.#emit("exited", `exited unexpectedly (${this.#lastExit})`, { code, signal });
      if (Date.now() - this.#startedAt >= (this.#options.stableAfterMs ?? 30_000)) {
        this.#backoffMs = this.#options.initialBackoffMs ?? 250;
      }
      this.#scheduleRestart();
    });
  }

  #scheduleRestart(): void {
    if (!this.#wanted) return;
    const delay = this.#backoffMs;
    this.#backoffMs = Math.min(this.#backoffMs * 2, this.#options.maxBackoffMs ?? 10_000);
    this.#restarts++;
    this.#setState("backoff");
    this.#emit("restart-scheduled", `restarting in ${delay} ms (restart ${this.#restarts})`, {
      delayMs: delay,
      restarts: this.#restarts,
    });
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.#spawn();
    }, delay);
    this.#timer.unref();
  }

  /**
   * No restart from now on: a process that exits stays down, one waiting to restart is not started.
   * A running process keeps running until `stop()` or `kill()`; `start()` undoes it.
   */
  hold(): void {
    this.#wanted = false;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /** Restarts now (a graceful stop, then a start), counting it as a restart. */
  async restart(): Promise<void> {
    await this.stop();
    this.#restarts++;
    this.start();
  }

  /**
   * Stops the process: the stop signal, then SIGKILL after the grace time. Resolves once it has
   * exited. No restart follows.
   */
  async stop(): Promise<void> {
    this.#wanted = false;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    const child = this.#child;
    if (child && child.exitCode === null && child.signalCode === null) {
      await new Promise<void>((resolve) => {
        const kill = setTimeout(() => {
          this.#options.forceKill?.(child);
          child.kill("SIGKILL");
        }, this.#options.stopGraceMs ?? 10_000);
        child.once("exit", () => {
          clearTimeout(kill);
          resolve();
        });
        child.kill("SIGCONT"); // a paused process cannot act on the stop signal
        child.kill(this.#options.stopSignal ?? "SIGTERM");
      });
    }
    this.#child = undefined;
    if (this.#state !== "stopped") {
      this.#setState("stopped");
      this.#emit("stopped", "stopped", {});
    }
  }

  /**
   * Kills the process at once with SIGKILL (a crash, not a stop: nothing gets to clean up) and
   * keeps it down until `start()`. Resolves once it has exited.
   */
  async kill(): Promise<void> {
    this.#wanted = false;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    const child = this.#child;
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
      child.kill("SIGKILL");
      await exited;
    }
    this.#child = undefined;
    this.#setState("stopped");
    this.#emit("stopped", "killed (SIGKILL), held down", {});
  }

  #setState(state: SupervisedState): void {
    if (this.#state !== state) {
      this.#state = state;
      this.#since = new Date();
    }
  }

  #emit(kind: SupervisorEvent["kind"], message: string, data: Record<string, unknown>): void {
    this.#options.onEvent?.({ kind, id: this.id, message, data });
  }
}
