/**
 * Helpers for tests: a small valid topology as plain data, changed with a function and compiled
 * through the real YAML loader, so tests exercise the same path as files.
 */
import { stringify } from "yaml";
import { parseTopology } from "./load.js";
import type { Topology } from "./model.js";

// biome-ignore lint/suspicious/noExplicitAny: test fixtures are deliberately loose data
export type TopologyData = Record<string, any>;

/** Three regions of two zones, `cells` cells in all three, one service writing and reading. */
export function sampleTopologyData(cells = 4): TopologyData {
  return {
    name: "sample",
    regions: [
      { name: "r1", zones: ["a", "b"], pair: "r2", latency: { r2: "10ms", r3: "40ms" } },
      { name: "r2", zones: ["a", "b"], pair: "r1", latency: { r3: "45ms" } },
      { name: "r3", zones: ["a", "b"] },
    ],
    cells: { count: cells, replicas: 3, syncQuorum: 1, buckets: 4096 },
    routers: { perRegion: 2 },
    services: [
      {
        name: "app",
        command: "app-server",
        instances: 2,
        capacityRps: 100,
        peakRps: 600,
        rto: "30s",
        rpo: 0,
        downtimeCostPerHour: 10_000,
        slos: [
          { scenario: "write", routes: ["POST /things"], availability: 99.9, latency: "200ms" },
          { scenario: "read", routes: ["GET /things/:id"], availability: 99.95, latency: "100ms" },
        ],
      },
    ],
    costs: { instancePerMonth: 50, databasePerMonth: 200, routerPerMonth: 50 },
  };
}

/** Compiles topology data through YAML, after `change` edits a fresh copy of the sample. */
export function sampleTopology(change: (data: TopologyData) => void = () => {}, cells = 4): Topology {
  const data = sampleTopologyData(cells);
  change(data);
  return parseTopology(stringify(data), "sample.yaml");
}
