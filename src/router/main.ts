/**
 * `ringfence router --region R`: the router of one region of a local world, with its routing table
 * pushed by the controller, its telemetry shipped to it, and a heartbeat every second.
 */
import { HEARTBEAT_INTERVAL_MS } from "../failover/settings.js";
import { httpRequest } from "../lib/http-request.js";
import type { Topology } from "../topology/model.js";
import type { RouterReport, TelemetryWindow } from "../world/contracts.js";
import type { Layout } from "../world/layout.js";
import type { StateDir, Tokens } from "../world/state.js";
import { RouterServer } from "./server.js";
import { TableClient } from "./table.js";
import { Telemetry } from "./telemetry.js";

export interface RouterProcessOptions {
  readonly region: string;
  readonly state: StateDir;
  readonly topology: Topology;
  readonly layout: Layout;
  readonly tokens: Tokens;
  readonly log: (line: string) => void;
}

export async function runRouterProcess(options: RouterProcessOptions): Promise<{ stop(): Promise<void> }> {
  const { region, state, topology, layout, tokens, log } = options;
  const controllerUrl = `http://${layout.controller.host}:${layout.controller.port}`;
  const post = async (path: string, body: unknown) => {
    const res = await httpRequest(`${controllerUrl}${path}`, {
      method: "POST",
      headers: { authorization: `Bearer ${tokens.agent}`, "content-type": "application/json" },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(2_000),
    });
    await res.drain();
    if (!res.ok) throw new Error(`controller answered ${res.status}`);
  };
  const table = new TableClient({
    controllerUrl,
    token: tokens.agent,
    file: state.routerTable(region),
    lastKnownGoodTtlMs: topology.routers.lastKnownGoodTtlMs,
    log: (line) => log(`[router ${region}] ${line}`),
  });
  const telemetry = new Telemetry({ router: region, ship: (w: TelemetryWindow) => post("/v1/telemetry", w) });
  const router = new RouterServer({ region, topology, layout, table, telemetry });
  await table.start();
  const slot = layout.regions.find((r) => r.name === region);
  if (!slot) throw new Error(`unknown region ${region}`);
  await router.listen(slot.router);
  telemetry.start();
  log(`[router ${region}] listening on http://${slot.router.host}:${slot.router.port}`);
  let stopped = false;
  const beat = async () => {
    while (!stopped) {
      const report: RouterReport = {
        region,
        pid: process.pid,
        tableVersion: table.current()?.table.version ?? 0,
        stale: table.stale,
        requests: router.counts.requests,
        errors: router.counts.errors,
      };
      await post(`/v1/routers/${encodeURIComponent(region)}/heartbeat`, report).catch(() => {});
      // The agents' period too: the controller judges both by the same freshness.
      await new Promise((r) => setTimeout(r, HEARTBEAT_INTERVAL_MS));
    }
  };
  const beating = beat();
  return {
    stop: async () => {
      stopped = true;
      telemetry.stop();
      await Promise.all([table.stop(), router.close(), beating]);
    },
  };
}
