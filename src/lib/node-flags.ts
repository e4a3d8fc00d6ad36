/**
 * V8 flags for the Node.js processes ringfence starts itself: the roles of a local world
 * (supervisor, controller, agents, routers) and the bundled demo's service instances, never a
 * user's own service.
 *
 * A default world runs ~46 such processes on one machine, most of them idle most of the time, and
 * V8's defaults are made for one process that has the machine to itself: a young generation of up
 * to 16 MiB per semi-space, and an old generation left to fill with garbage until a limit far above
 * what the process keeps alive. A process that allocates steadily (an agent probing every 500 ms, a
 * router relaying tables and requests) grows both and keeps the pages: 30–60 MiB resident where
 * 10–15 are alive.
 *
 * - `--max-semi-space-size=2`: young generation capped at 2 MiB per semi-space; young collections
 *   become more frequent and each stays short.
 * - `--optimize-for-size`: V8 grows the old generation less between full collections and favours
 *   smaller code. Not for routers, whose request path keeps every optimisation (`ROUTER_NODE_FLAGS`).
 *
 * Measured on the default world: docs/benchmarks.md, "The local world".
 */
export const CHILD_NODE_FLAGS: readonly string[] = ["--max-semi-space-size=2", "--optimize-for-size"];

/** The router's flags: the young generation capped, the code optimised for speed as usual. */
export const ROUTER_NODE_FLAGS: readonly string[] = ["--max-semi-space-size=2"];

/**
 * `RINGFENCE_NODE_FLAGS` (space-separated) is added to both, for looking into a world's processes:
 * for example `--cpu-prof --cpu-prof-dir=/tmp/prof` writes a CPU profile of each when it exits.
 */
export function withExtraNodeFlags(flags: readonly string[], env: NodeJS.ProcessEnv = process.env): string[] {
  return [...flags, ...(env.RINGFENCE_NODE_FLAGS ?? "").split(/\s+/).filter((f) => f !== "")];
}
