/**
 * A router with every feature on (tenant routing, retry budget, outlier ejection, shedding,
 * telemetry) in front of fixed origins, without a controller: one region, one cell whose instances
 * are the origins. Used by `npm run bench:router` and by tests.
 */
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseTopology } from "../topology/load.js";
import { encodeBucketTable } from "../world/contracts.js";
import { buildLayout, type Endpoint } from "../world/layout.js";
import { RouterServer } from "./server.js";
import { TableClient } from "./table.js";
import { Telemetry } from "./telemetry.js";

export async function startStandaloneRouter(options: {
  readonly listen: Endpoint;
  readonly origins: readonly Endpoint[];
}): Promise<{ url: string; pid: number; close(): Promise<void> }> {
  const topology = parseTopology(
    `
name: standalone
regions: [{ name: local, zones: [a] }]
cells: { count: 1, replicas: 1, buckets: 16 }
routers: { perRegion: 1 }
services:
  - name: origin
    command: origin
    instances: ${Math.max(1, options.origins.length)}
    slos:
      - { scenario: read, routes: ["GET /users/:id"], availability: 99.9, latency: 100ms }
`,
    "standalone.yaml",
  );
  const base = buildLayout(topology, 0);
  const layout = {
    ...base,
    instances: base.instances.map((slot, i) => ({
      ...slot,
      ...(options.origins[i] ?? options.origins[0] ?? slot),
    })),
  };
  const table = new TableClient({
    controllerUrl: "http://127.0.0.1:1",
    token: "none",
    file: join(tmpdir(), `ringfence-standalone-${process.pid}.json`),
  });
  table.apply(
    {
      version: 1,
      generatedAt: new Date().toISOString(),
      buckets: topology.cells.buckets,
      bucketTable: encodeBucketTable(new Uint32Array(topology.cells.buckets)),
      cells: [{ cell: "cell-0", primary: "local", epoch: 1, fenced: false }],
      health: Object.fromEntries(layout.instances.map((i) => [i.id, "healthy" as const])),
      drains: [],
    },
    Date.now(),
    false,
  );
  const telemetry = new Telemetry({ router: "local" });
  const router = new RouterServer({ region: "local", topology, layout, table, telemetry });
  const bound = await router.listen(options.listen);
  return {
    url: `http://${bound.host}:${bound.port}`,
    pid: process.pid,
    close: async () => {
      telemetry.stop();
      await router.close();
    },
  };
}
