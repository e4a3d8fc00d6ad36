/**
 * Cross-field rules that a schema cannot express: names must be unique and references must resolve,
 * replica counts must be possible, latency must be known for every pair of regions. Each rule runs
 * when the sections it reads parsed, so one bad section does not hide the problems of another.
 */
import { MIN_DETECTION_MS } from "../failover/settings.js";
import { syncQuorumOf } from "./compile.js";
import { closest } from "./messages.js";
import type { RawTopology } from "./schema.js";

export type PathPart = string | number;
export interface Located {
  path: PathPart[];
  message: string;
}

type Partial<T> = { [K in keyof T]?: T[K] };

export function validate(raw: Partial<RawTopology>): Located[] {
  const problems: Located[] = [];
  const report = (path: PathPart[], message: string) => problems.push({ path, message });
  const regionNames = raw.regions?.map((r) => r.name) ?? [];

  if (raw.regions) validateRegions(raw.regions, report);
  if (raw.regions && raw.cells) validateCells(raw.cells, regionNames, report);
  if (raw.dependencies) {
    uniqueNames(raw.dependencies, ["dependencies"], "dependency", report);
    raw.dependencies.forEach((d, i) => {
      uniqueNames(d.providers, ["dependencies", i, "providers"], "provider", report);
    });
  }
  if (raw.notifications) {
    uniqueNames(raw.notifications, ["notifications"], "notification channel", report);
    raw.notifications.forEach((n, i) => {
      uniqueNames(n.providers, ["notifications", i, "providers"], "provider", report);
    });
  }
  if (raw.services) {
    uniqueNames(raw.services, ["services"], "service", report);
    raw.services.forEach((s, i) => {
      const seen = new Map<string, number>();
      s.slos.forEach((slo, j) => {
        const first = seen.get(slo.scenario);
        if (first !== undefined) {
          report(
            ["services", i, "slos", j, "scenario"],
            `duplicate scenario "${slo.scenario}" (also services[${i}].slos[${first}]); scenario names must be unique within a service`,
          );
        } else seen.set(slo.scenario, j);
      });
      if (raw.dependencies) {
        const known = raw.dependencies.map((d) => d.name);
        const check = (names: string[], path: PathPart[]) =>
          names.forEach((n, k) => {
            if (!known.includes(n)) report([...path, k], unknownName("dependency", n, known, "dependencies"));
          });
        check(s.dependencies, ["services", i, "dependencies"]);
        s.slos.forEach((slo, j) => {
          check(slo.dependencies, ["services", i, "slos", j, "dependencies"]);
        });
      }
    });
  }
  if (raw.failover && raw.failover.detection < MIN_DETECTION_MS) {
    report(
      ["failover", "detection"],
      `must be at least ${MIN_DETECTION_MS}ms: two failed probes with timeouts of 200 ms or more, and the report's delivery, must fit in it (see docs/failover.md)`,
    );
  }
  if (raw.failover && raw.cells) {
    const count = raw.cells.count;
    raw.failover.manualFailback.forEach((cell, i) => {
      if (cell >= count)
        report(
          ["failover", "manualFailback", i],
          `cell ${cell} does not exist: cells are numbered 0 to ${count - 1}`,
        );
    });
  }
  if (raw.components?.provider) {
    const p = raw.components.provider;
    if (p.availability !== undefined || p.mtbf !== undefined) {
      report(
        ["components", "provider"],
        "only mttr can be set for providers: each provider gives its own availability under dependencies[].providers[]",
      );
    }
  }
  for (const [kind, rel] of Object.entries(raw.components ?? {})) {
    if (rel && rel.availability !== undefined && rel.mtbf !== undefined && rel.mttr !== undefined) {
      report(
        ["components", kind],
        "give at most two of availability, mtbf and mttr: the third follows from availability = mtbf / (mtbf + mttr)",
      );
    }
    if (rel?.mtbf === 0) report(["components", kind, "mtbf"], "must be longer than 0");
    if (rel?.mttr === 0) report(["components", kind, "mttr"], "must be longer than 0");
  }
  return problems;
}

function validateRegions(regions: RawTopology["regions"], report: (p: PathPart[], m: string) => void): void {
  const names = regions.map((r) => r.name);
  uniqueNames(regions, ["regions"], "region", report);
  regions.forEach((region, i) => {
    const zones = new Set<string>();
    region.zones.forEach((z, j) => {
      if (zones.has(z))
        report(["regions", i, "zones", j], `duplicate zone "${z}" in region "${region.name}"`);
      zones.add(z);
    });
    if (region.pair !== undefined) {
      const other = regions.find((r) => r.name === region.pair);
      if (region.pair === region.name) report(["regions", i, "pair"], "a region cannot be its own pair");
      else if (!other) report(["regions", i, "pair"], unknownName("region", region.pair, names));
      // A partner that names another region (not itself: that is reported on the partner) disagrees.
      else if (other.pair !== undefined && other.pair !== region.name && other.pair !== other.name) {
        report(
          ["regions", i, "pair"],
          `"${region.name}" pairs with "${region.pair}", but "${region.pair}" pairs with "${other.pair}"; pairs must agree`,
        );
      }
    }
    for (const [to, ms] of Object.entries(region.latency ?? {})) {
      if (to === region.name)
        report(["regions", i, "latency", to], "latency to the region itself is not needed; remove it");
      else if (!names.includes(to)) report(["regions", i, "latency", to], unknownName("region", to, names));
      else {
        const back = regions.find((r) => r.name === to)?.latency?.[region.name];
        const j = names.indexOf(to);
        if (back !== undefined && back !== ms && i < j) {
          report(
            ["regions", i, "latency", to],
            `${ms} ms here but regions[${j}].latency.${region.name} says ${back} ms; one-way latency must be the same both ways (give it once)`,
          );
        }
      }
    }
  });
  for (let i = 0; i < regions.length; i++) {
    for (let j = i + 1; j < regions.length; j++) {
      const a = regions[i] as (typeof regions)[number];
      const b = regions[j] as (typeof regions)[number];
      if (a.name === b.name) continue;
      const known =
        a.latency?.[b.name] !== undefined ||
        b.latency?.[a.name] !== undefined ||
        (a.location !== undefined && b.location !== undefined);
      if (!known) {
        report(
          ["regions", i, "latency"],
          `no WAN latency between "${a.name}" and "${b.name}": add regions[${i}].latency.${b.name} (e.g. 40ms), or a location to both regions`,
        );
      }
    }
  }
  const given = regions.filter((r) => r.trafficShare !== undefined);
  const sum = given.reduce((s, r) => s + (r.trafficShare ?? 0), 0);
  if (sum > 100.0001) {
    report(["regions"], `trafficShare adds up to ${sum}%, more than 100%; lower the shares`);
  } else if (given.length === regions.length && Math.abs(sum - 100) > 0.0001) {
    report(["regions"], `trafficShare adds up to ${sum}%, not 100%; fix the shares or leave some out`);
  } else if (given.length > 0 && given.length < regions.length && sum > 99.9999) {
    const rest = regions.filter((r) => r.trafficShare === undefined).map((r) => r.name);
    report(
      ["regions"],
      `trafficShare adds up to 100% already, leaving 0% for ${rest.join(", ")}; lower the shares or give those regions theirs`,
    );
  }
}

function validateCells(
  cells: RawTopology["cells"],
  regionNames: string[],
  report: (p: PathPart[], m: string) => void,
): void {
  const eligible = cells.regions ?? regionNames;
  const seen = new Set<string>();
  cells.regions?.forEach((r, i) => {
    if (!regionNames.includes(r)) report(["cells", "regions", i], unknownName("region", r, regionNames));
    if (seen.has(r)) report(["cells", "regions", i], `"${r}" is listed twice`);
    seen.add(r);
  });
  const replicas = cells.replicas ?? Math.min(3, eligible.length);
  if (replicas > eligible.length) {
    report(
      ["cells", "replicas"],
      `${replicas} replicas need ${replicas} regions (no two replicas of a cell share a region), but only ${eligible.length} ${cells.regions ? "are listed in cells.regions" : "exist"}; lower replicas or add regions`,
    );
  }
  const syncQuorum = syncQuorumOf(cells, replicas);
  if (syncQuorum > replicas - 1) {
    report(
      ["cells", "syncQuorum"],
      `syncQuorum ${syncQuorum} (ANY ${syncQuorum} out-of-region standby${syncQuorum === 1 ? "" : "s"}) needs at least ${syncQuorum + 1} replicas, a primary and ${syncQuorum} standby${syncQuorum === 1 ? "" : "s"}, but replicas is ${replicas}; lower syncQuorum or raise replicas`,
    );
  }
  if (cells.count > cells.buckets) {
    report(
      ["cells", "count"],
      `${cells.count} cells cannot share ${cells.buckets} buckets (every cell needs at least one); raise cells.buckets`,
    );
  }
  const pinned = new Map<number, number>();
  cells.pin.forEach((pin, i) => {
    if (pin.cell >= cells.count) {
      report(
        ["cells", "pin", i, "cell"],
        `cell ${pin.cell} does not exist: cells are numbered 0 to ${cells.count - 1}`,
      );
    }
    const first = pinned.get(pin.cell);
    if (first !== undefined)
      report(["cells", "pin", i, "cell"], `cell ${pin.cell} is pinned twice (also cells.pin[${first}])`);
    pinned.set(pin.cell, i);
    if (pin.regions.length !== replicas) {
      report(
        ["cells", "pin", i, "regions"],
        `lists ${pin.regions.length} regions but cells.replicas is ${replicas}; list exactly ${replicas}`,
      );
    }
    const inCell = new Set<string>();
    pin.regions.forEach((r, j) => {
      if (!regionNames.includes(r))
        report(["cells", "pin", i, "regions", j], unknownName("region", r, eligible));
      else if (!eligible.includes(r)) {
        report(
          ["cells", "pin", i, "regions", j],
          `region "${r}" is not in cells.regions (${[...new Set(eligible)].join(", ")}); add it there or pin another region`,
        );
      }
      if (inCell.has(r)) {
        report(
          ["cells", "pin", i, "regions", j],
          `"${r}" is listed twice: no two replicas of one cell may share a region, since a region failure would take both`,
        );
      }
      inCell.add(r);
    });
  });
}

function uniqueNames(
  items: readonly { name: string }[],
  path: PathPart[],
  what: string,
  report: (p: PathPart[], m: string) => void,
): void {
  const seen = new Map<string, number>();
  items.forEach((item, i) => {
    const first = seen.get(item.name);
    if (first !== undefined) {
      const at = path
        .map((p) => (typeof p === "number" ? `[${p}]` : p))
        .join(".")
        .replace(/\.\[/g, "[");
      report(
        [...path, i, "name"],
        `duplicate ${what} "${item.name}" (also ${at}[${first}]); names must be unique`,
      );
    } else seen.set(item.name, i);
  });
}

function unknownName(what: string, name: string, known: readonly string[], section = `${what}s`): string {
  const guess = closest(name, known);
  if (known.length === 0) return `unknown ${what} "${name}": none are defined under ${section}`;
  return `unknown ${what} "${name}"${guess ? ` (did you mean "${guess}"?)` : ""}; use one of ${[...new Set(known)].join(", ")}`;
}
