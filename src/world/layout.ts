/**
 * The address plan of a local world: where every process of a topology listens. Pure and
 * deterministic, so the controller, agents, routers and the WAN emulator all agree on it.
 *
 * Every region has its own loopback /24: region i is 127.B.(10+i).0/24, where B is the world's
 * `addressBase` (0 by default; tests use others so that worlds never collide). In a region:
 *   .1        the region's router (port 8080)
 *   .2        the region's end of every WAN link: one forward per remote endpoint, same port
 *   .(10+z)   zone z's host: its databases, writer endpoints and service instances
 * Control plane on 127.B.0.1: controller 7070, control database 7071, WAN control 7072.
 * Ports of databases, writer endpoints and instances are unique in the world, so a WAN forward can
 * listen on the remote endpoint's own port.
 */
import type { Cell, Topology } from "../topology/model.js";
import { zoneOfIndex } from "./placement.js";

export interface Endpoint {
  readonly host: string;
  readonly port: number;
}

export interface DatabaseSlot extends Endpoint {
  /** `cell-0/us-east`. */
  readonly id: string;
  readonly cell: string;
  readonly region: string;
  readonly zone: string;
  /** PostgreSQL `application_name` of this instance as a standby: `cell_0_us_east`. */
  readonly applicationName: string;
}

export interface WriterSlot extends Endpoint {
  /** `cell-0/us-east`: the writer endpoint of a cell as reached from one region. */
  readonly id: string;
  readonly cell: string;
  readonly region: string;
  readonly zone: string;
}

export interface InstanceSlot extends Endpoint {
  /** `directory/cell-0/us-east/1`, or `directory-fallback/cell-0/us-east/0`. */
  readonly id: string;
  readonly service: string;
  readonly kind: "service" | "fallback";
  readonly cell: string;
  readonly region: string;
  readonly zone: string;
  readonly index: number;
  readonly command: readonly string[];
  readonly healthPath: string;
}

export interface RegionSlot {
  readonly name: string;
  readonly index: number;
  /** `127.B.(10+i)`. */
  readonly subnet: string;
  readonly router: Endpoint;
  /** Where this region reaches remote endpoints through the WAN. */
  readonly wanHost: string;
}

export interface ZoneSlot {
  /** `us-east/a`. */
  readonly id: string;
  readonly region: string;
  readonly host: string;
}

export interface Layout {
  readonly addressBase: number;
  readonly controller: Endpoint;
  readonly controlDatabase: Endpoint;
  readonly wanControl: Endpoint;
  readonly regions: readonly RegionSlot[];
  readonly zones: readonly ZoneSlot[];
  readonly databases: readonly DatabaseSlot[];
  readonly writers: readonly WriterSlot[];
  readonly instances: readonly InstanceSlot[];
}

export const PORTS = { controller: 7070, controlDatabase: 7071, wanControl: 7072, router: 8080 } as const;
const DATABASE_PORT_BASE = 20_000;
const WRITER_PORT_BASE = 24_000;
const INSTANCE_PORT_BASE = 26_000;

/** The application name of a cell's instance in a region: `cell_0_us_east`. */
export function applicationName(cell: string, region: string): string {
  return `${cell}_${region}`.replace(/[^a-z0-9]+/g, "_");
}

export function buildLayout(topology: Topology, addressBase = 0): Layout {
  if (!Number.isInteger(addressBase) || addressBase < 0 || addressBase > 255) {
    throw new RangeError(`addressBase must be 0..255, got ${addressBase}`);
  }
  if (topology.regions.length > 245) throw new RangeError("a local world holds at most 245 regions");
  const controlHost = `127.${addressBase}.0.1`;
  const regions: RegionSlot[] = topology.regions.map((r, i) => {
    const subnet = `127.${addressBase}.${10 + i}`;
    return {
      name: r.name,
      index: i,
      subnet,
      router: { host: `${subnet}.1`, port: PORTS.router },
      wanHost: `${subnet}.2`,
    };
  });
  const subnetOf = new Map(regions.map((r) => [r.name, r.subnet]));
  const zones: ZoneSlot[] = topology.regions.flatMap((r) =>
    r.zones.map((z, j) => ({ id: z.id, region: r.name, host: `${subnetOf.get(r.name)}.${10 + j}` })),
  );
  const hostOf = new Map(zones.map((z) => [z.id, z.host]));
  const zoneFor = (cell: Cell, region: string, offset: number) =>
    zoneOfIndex(topology, region, cell.index + offset);

  const databases: DatabaseSlot[] = [];
  const writers: WriterSlot[] = [];
  const instances: InstanceSlot[] = [];
  let dbPort = DATABASE_PORT_BASE;
  let writerPort = WRITER_PORT_BASE;
  let instancePort = INSTANCE_PORT_BASE;
  for (const cell of topology.cells.list) {
    for (const region of cell.regions) {
      const zone = zoneFor(cell, region, 0);
      const host = hostOf.get(zone) as string;
      databases.push({
        id: `${cell.id}/${region}`,
        cell: cell.id,
        region,
        zone,
        host,
        port: dbPort++,
        applicationName: applicationName(cell.id, region),
      });
      writers.push({ id: `${cell.id}/${region}`, cell: cell.id, region, zone, host, port: writerPort++ });
      const addInstance = (
        service: { name: string; healthPath: string },
        kind: InstanceSlot["kind"],
        index: number,
        zone: string,
        command: readonly string[],
      ) =>
        instances.push({
          id: `${service.name}${kind === "fallback" ? "-fallback" : ""}/${cell.id}/${region}/${index}`,
          service: service.name,
          kind,
          cell: cell.id,
          region,
          zone,
          host: hostOf.get(zone) as string,
          port: instancePort++,
          index,
          command,
          healthPath: service.healthPath,
        });
      for (const service of topology.services) {
        // Instance i of cell c runs in zone c + i mod zones: a cell's instances spread over the zones,
        // and with one instance per cell the cells' instances spread too.
        for (let i = 0; i < service.instancesPerRegion; i++) {
          addInstance(service, "service", i, zoneFor(cell, region, i), service.command);
        }
        // Fallback instances start one zone further: away from the cell's database zone, and from
        // its first service instance (a fallback shares no zone with the one instance it stands in for).
        const fallback = service.fallback;
        for (let i = 0; i < (fallback?.instancesPerRegion ?? 0); i++) {
          addInstance(service, "fallback", i, zoneFor(cell, region, i + 1), fallback?.command ?? []);
        }
      }
    }
  }
  if (instancePort > 65_000) throw new RangeError("the topology needs more ports than a local world has");
  return {
    addressBase,
    controller: { host: controlHost, port: PORTS.controller },
    controlDatabase: { host: controlHost, port: PORTS.controlDatabase },
    wanControl: { host: controlHost, port: PORTS.wanControl },
    regions,
    zones,
    databases,
    writers,
    instances,
  };
}

/**
 * How a process in region `from` reaches `target` in region `to`: directly in the same region,
 * otherwise through `from`'s end of the WAN link, on the target's own port.
 */
export function reach(layout: Layout, from: string, to: string, target: Endpoint): Endpoint {
  if (from === to) return target;
  const region = layout.regions.find((r) => r.name === from);
  if (!region) throw new Error(`unknown region ${from}`);
  return { host: region.wanHost, port: target.port };
}

/** Every WAN forward the world needs: each remote database, and each remote service instance. */
export function wanForwards(
  layout: Layout,
): { from: string; to: string; listen: Endpoint; target: Endpoint }[] {
  const targets = [
    ...layout.databases.map((d) => ({ region: d.region, endpoint: { host: d.host, port: d.port } })),
    ...layout.instances.map((i) => ({ region: i.region, endpoint: { host: i.host, port: i.port } })),
  ];
  const forwards: { from: string; to: string; listen: Endpoint; target: Endpoint }[] = [];
  for (const from of layout.regions) {
    for (const t of targets) {
      if (t.region === from.name) continue;
      forwards.push({
        from: from.name,
        to: t.region,
        listen: { host: from.wanHost, port: t.endpoint.port },
        target: t.endpoint,
      });
    }
  }
  return forwards;
}
