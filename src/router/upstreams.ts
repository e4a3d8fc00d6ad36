/**
 * Where a router may send a request: the instances of a (service, cell), grouped by region with
 * the router's own region first and the others by WAN latency, minus those drained, marked
 * unhealthy by the controller or ejected by the outlier detector; and which of them a try goes to
 * (policy/balancer.ts). Each instance used gets one keep-alive pool, made on first use.
 */
import type { Topology } from "../topology/model.js";
import { type Endpoint, type InstanceSlot, type Layout, reach } from "../world/layout.js";
import { chooseUpstream, type OutlierDetector, Rotation } from "./policy/index.js";
import type { LiveTable } from "./table.js";
import { UpstreamPool } from "./upstream/pool.js";

/** One instance the router sends to, with its pool and the requests it has outstanding. */
export interface Upstream {
  readonly slot: InstanceSlot;
  readonly target: Endpoint;
  readonly pool: UpstreamPool;
  outstanding: number;
}

/** Candidates of one request: a list per region, nearest first. */
export type Candidates = Upstream[][];

/** Connections a router keeps to one instance at most. */
const MAX_CONNECTIONS_PER_UPSTREAM = 128;

export class Upstreams {
  readonly #layout: Layout;
  readonly #region: string;
  readonly #outliers: OutlierDetector;
  readonly #pools = new Map<string, Upstream>();
  /** Region names: the router's own first, then the others by WAN latency from it. */
  readonly #order: string[];
  /** The instance slots of each (service, cell, kind), grouped like {@link #order}. */
  readonly #slots = new Map<string, InstanceSlot[][]>();
  readonly #rotation = new Rotation();

  constructor(topology: Topology, layout: Layout, region: string, outliers: OutlierDetector) {
    this.#layout = layout;
    this.#region = region;
    this.#outliers = outliers;
    const own = topology.regions.find((r) => r.name === region);
    if (!own) throw new Error(`unknown region ${region}`);
    this.#order = [
      own.name,
      ...topology.regions
        .filter((r) => r.name !== own.name)
        .sort(
          (a, b) =>
            (own.latencyMs[a.name] ?? 0) - (own.latencyMs[b.name] ?? 0) || a.name.localeCompare(b.name),
        )
        .map((r) => r.name),
    ];
    for (const slot of layout.instances) {
      const key = `${slot.service}|${slot.cell}|${slot.kind}`;
      let groups = this.#slots.get(key);
      if (!groups) {
        groups = this.#order.map(() => []);
        this.#slots.set(key, groups);
      }
      groups[this.#order.indexOf(slot.region)]?.push(slot);
    }
  }

  /** Eligible instances of a cell for a service, by region: own region first, then nearest. */
  eligible(live: LiveTable, service: string, cell: string, kind: InstanceSlot["kind"]): Candidates {
    const byRegion: Candidates = [];
    const groups = this.#slots.get(`${service}|${cell}|${kind}`);
    if (!groups) return byRegion;
    for (let r = 0; r < groups.length; r++) {
      const slots = groups[r] as InstanceSlot[];
      if (slots.length === 0 || live.drained.has(this.#order[r] as string)) continue;
      const list: Upstream[] = [];
      for (const slot of slots) {
        if (live.drained.has(slot.zone) || live.drained.has(slot.id)) continue;
        if (live.table.health[slot.id] === "unhealthy") continue;
        if (this.#outliers.isEjected(slot.id)) continue;
        list.push(this.#upstream(slot));
      }
      if (list.length > 0) byRegion.push(list);
    }
    return byRegion;
  }

  /** The upstream for a try (see policy/balancer.ts): nearest region with an untried one, least outstanding. */
  choose(
    groups: Candidates,
    tried: ReadonlySet<string>,
    previous: Upstream | undefined,
  ): Upstream | undefined {
    return chooseUpstream(groups, tried, previous?.slot.zone, this.#rotation);
  }

  /** The upstream of an instance id, if the router has sent to it. */
  get(id: string): Upstream | undefined {
    return this.#pools.get(id);
  }

  /** Closes every pool and forgets them. */
  close(): void {
    for (const u of this.#pools.values()) u.pool.close();
    this.#pools.clear();
  }

  #upstream(slot: InstanceSlot): Upstream {
    let u = this.#pools.get(slot.id);
    if (!u) {
      const target = reach(this.#layout, this.#region, slot.region, slot);
      u = {
        slot,
        target,
        pool: new UpstreamPool({
          host: target.host,
          port: target.port,
          maxConnections: MAX_CONNECTIONS_PER_UPSTREAM,
        }),
        outstanding: 0,
      };
      this.#pools.set(slot.id, u);
    }
    return u;
  }
}
