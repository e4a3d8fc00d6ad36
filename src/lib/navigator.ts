/**
 * `globalThis.navigator` on Node.js 20, as Node.js 21 and later define it.
 *
 * node-postgres decides at load whether it runs on Cloudflare Workers: it reads `navigator.userAgent`,
 * and where there is no `navigator` (Node.js 20) it builds a fetch `Response` instead, which loads
 * Node's whole fetch implementation (undici) into a process that never fetches. That cost each of
 * a local world's ~35 Node.js processes ~50 ms of CPU at start, and the memory undici keeps (see
 * docs/benchmarks.md, "The local world"). Call before anything loads `pg`; a no-op where
 * `navigator` exists.
 */
import { availableParallelism } from "node:os";

export function defineNavigator(): void {
  if (typeof (globalThis as { navigator?: unknown }).navigator !== "undefined") return;
  Object.defineProperty(globalThis, "navigator", {
    configurable: true,
    enumerable: true,
    value: Object.freeze({
      hardwareConcurrency: availableParallelism(),
      language: "en-US",
      platform: process.platform,
      userAgent: `Node.js/${process.versions.node.split(".")[0]}`,
    }),
  });
}
