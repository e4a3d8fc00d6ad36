/**
 * The Debian tools the router benchmark uses when it can (wrk, haproxy): installed with apt-get
 * when missing, saying so, and left out with a message when they cannot be installed.
 */
import { spawnSync } from "node:child_process";

/** Whether `command` runs here. */
export function hasCommand(command: string, versionFlag = "-v"): boolean {
  return spawnSync(command, [versionFlag], { stdio: "ignore" }).error === undefined;
}

function aptGet(args: string[]): boolean {
  console.log(`  $ apt-get ${args.join(" ")}`);
  const r = spawnSync("apt-get", args, {
    env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
    encoding: "utf8",
    timeout: 300_000,
  });
  if (r.error) {
    console.log(`    apt-get could not run: ${r.error.message}`);
    return false;
  }
  if (r.status !== 0)
    console.log(`    failed (${r.status}): ${r.stderr.trim().split("\n").slice(-2).join(" | ")}`);
  return r.status === 0;
}

/**
 * Installs the Debian packages whose command is missing (`apt-get install -y`, then `apt-get
 * update` and a second try if the first fails). Returns the commands available afterwards.
 */
export function ensureDebianTools(
  tools: readonly { command: string; pkg: string; versionFlag: string }[],
): Set<string> {
  const present = new Set(tools.filter((t) => hasCommand(t.command, t.versionFlag)).map((t) => t.command));
  const missing = tools.filter((t) => !present.has(t.command));
  if (missing.length > 0) {
    const pkgs = missing.map((t) => t.pkg);
    console.log(`installing missing tools (${pkgs.join(", ")}) with apt-get:`);
    const install = ["install", "-y", "--no-install-recommends", ...pkgs];
    if (!aptGet(install) && aptGet(["update"])) aptGet(install);
    for (const t of missing) {
      const ok = hasCommand(t.command, t.versionFlag);
      if (ok) present.add(t.command);
      console.log(`  ${t.command}: ${ok ? "installed" : "still not installed"}`);
    }
  }
  return present;
}
