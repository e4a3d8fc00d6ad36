/**
 * Real PostgreSQL instances for tests: a primary with optional streaming standbys in a temporary
 * folder that the `postgres` user can reach, stopped and removed by `stop()` even after SIGSTOP.
 */
import type { ChildProcess } from "node:child_process";
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "./ports.js";
import {
  baseSettings,
  cloneStandbyAsync,
  findPgBinaries,
  initPrimary,
  type PgBinaries,
  pgRunAs,
  primaryConninfo,
  type RunAs,
  signalGroup,
  spawnPostgres,
  synchronousStandbyNames,
  waitReady,
  writeSettings,
} from "./postgres.js";

export interface TestInstance {
  readonly name: string;
  readonly host: string;
  readonly port: number;
  readonly dataDir: string;
  readonly process: ChildProcess;
}

export interface TestCluster {
  readonly primary: TestInstance;
  readonly standbys: readonly TestInstance[];
  readonly dir: string;
  readonly bin: PgBinaries;
  readonly runAs: RunAs | undefined;
  /**
   * Starts (again) an instance on `dataDir` with the base settings plus `extra`, e.g. a stopped
   * primary as a standby after a rewind; `stop()` stops it too.
   */
  startInstance(
    name: string,
    dataDir: string,
    port: number,
    extra: Record<string, string | number>,
  ): Promise<TestInstance>;
  /** Stops one instance (a fast shutdown by default) and waits for it to exit. */
  stopInstance(instance: TestInstance, signal?: NodeJS.Signals): Promise<void>;
  /** Stops every instance (resuming stopped ones first) and removes the folder. */
  stop(): Promise<void>;
}

/**
 * Starts a primary and `standbys` streaming standbys on 127.0.0.1. With `syncQuorum` > 0 the
 * primary waits for that many standbys (`ANY k`) to flush each commit.
 */
export async function startTestCluster(
  options: { standbys?: number; syncQuorum?: number } = {},
): Promise<TestCluster> {
  const bin = findPgBinaries();
  const runAs = pgRunAs();
  const dir = mkdtempSync(join(tmpdir(), "ringfence-pg-"));
  chmodSync(dir, 0o755); // the postgres user must traverse it
  const instances: TestInstance[] = [];
  const start = async (
    name: string,
    dataDir: string,
    port: number,
    extra: Record<string, string | number>,
  ) => {
    writeSettings(dataDir, { ...baseSettings("127.0.0.1", port), ...extra }, runAs);
    const child = spawnPostgres(bin, dataDir, runAs, join(dir, `${name}.log`));
    const instance = { name, host: "127.0.0.1", port, dataDir, process: child };
    instances.push(instance);
    await waitReady("127.0.0.1", port);
    return instance;
  };
  const stopInstance = async (i: TestInstance, signal: NodeJS.Signals = "SIGINT") => {
    if (i.process.exitCode !== null || i.process.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      i.process.once("exit", () => resolve());
      signalGroup(i.process, "SIGCONT");
      i.process.kill(signal);
    });
  };
  const stop = async () => {
    await Promise.all(
      instances.map(
        (i) =>
          new Promise<void>((resolve) => {
            if (i.process.exitCode !== null || i.process.signalCode !== null) return resolve();
            i.process.once("exit", () => resolve());
            signalGroup(i.process, "SIGCONT");
            i.process.kill("SIGQUIT"); // immediate shutdown: children exit too
            setTimeout(() => signalGroup(i.process, "SIGKILL"), 5_000).unref();
          }),
      ),
    );
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const names = Array.from({ length: options.standbys ?? 0 }, (_, i) => `standby${i}`);
    const primaryDir = join(dir, "primary");
    await initPrimary(bin, primaryDir, runAs);
    const primary = await start("primary", primaryDir, await freePort(), {
      synchronous_standby_names: synchronousStandbyNames(options.syncQuorum ?? 0, names),
    });
    const standbys: TestInstance[] = [];
    for (const name of names) {
      const dataDir = join(dir, name);
      const source = { host: primary.host, port: primary.port, applicationName: name };
      await cloneStandbyAsync(bin, dataDir, runAs, source);
      standbys.push(
        await start(name, dataDir, await freePort(), { primary_conninfo: primaryConninfo(source) }),
      );
    }
    return { primary, standbys, dir, bin, runAs, startInstance: start, stopInstance, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
