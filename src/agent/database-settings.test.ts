import assert from "node:assert/strict";
import { test } from "node:test";
import type { CellState } from "../world/contracts.js";
import type { DatabaseSlot, Layout } from "../world/layout.js";
import { cellPrimary, cellUpstream, instanceSettings, wantedStandbyNames } from "./database-settings.js";

const slot = (region: string, port: number): DatabaseSlot => ({
  id: `cell-0/${region}`,
  cell: "cell-0",
  region,
  zone: `${region}/a`,
  host: `127.0.${10 + Number(region.slice(1))}.10`,
  port,
  applicationName: `cell_0_${region}`,
});
const databases = [slot("r1", 20000), slot("r2", 20001), slot("r3", 20002)];
const none = { host: "127.0.0.1", port: 0 };
const layout: Layout = {
  addressBase: 0,
  controller: none,
  controlDatabase: none,
  wanControl: none,
  regions: ["r1", "r2", "r3"].map((name, index) => ({
    name,
    index,
    subnet: `127.0.${10 + index}`,
    router: none,
    wanHost: `127.0.${10 + index}.2`,
  })),
  zones: [],
  databases,
  writers: [],
  instances: [],
};
const cell: CellState = { cell: "cell-0", primary: "r2", epoch: 2, fenced: false };
const [r1, r2, r3] = databases as [DatabaseSlot, DatabaseSlot, DatabaseSlot];

test("a primary waits for ANY k of the cell's other instances, or for none when the cell commits async", () => {
  assert.equal(wantedStandbyNames(layout, r2, cell, 1), 'ANY 1 ("cell_0_r1", "cell_0_r3")');
  assert.equal(
    wantedStandbyNames(layout, r2, { ...cell, commit: "quorum" }, 2),
    'ANY 2 ("cell_0_r1", "cell_0_r3")',
  );
  assert.equal(wantedStandbyNames(layout, r2, { ...cell, commit: "async" }, 1), "");
  const settings = instanceSettings(layout, r2, cell, r2, 1);
  assert.equal(settings.synchronous_standby_names, 'ANY 1 ("cell_0_r1", "cell_0_r3")');
  assert.equal(settings.primary_conninfo, undefined);
  assert.equal(settings.port, 20001);
});

test("a standby follows the primary through its own region's end of the WAN, under its application name", () => {
  const settings = instanceSettings(layout, r1, cell, r2, 1);
  assert.equal(
    settings.primary_conninfo,
    "host=127.0.10.2 port=20001 user=ringfence application_name=cell_0_r1",
  );
  assert.equal(settings.synchronous_standby_names, undefined);
  assert.equal(settings.listen_addresses, r1.host);
});

test("during a switchover the other standbys stream from its target; the target and the primary do not move", () => {
  const switching: CellState = { ...cell, fenced: true, switchingTo: "r3" };
  assert.equal(
    cellUpstream(layout, r1, switching)?.slot.id,
    r3.id,
    "the other standby relays through the target",
  );
  assert.equal(
    cellUpstream(layout, r1, switching)?.reach.host,
    "127.0.10.2",
    "through its region's end of the WAN",
  );
  assert.equal(cellUpstream(layout, r3, switching)?.slot.id, r2.id, "the target keeps following the primary");
  assert.equal(cellUpstream(layout, r2, switching)?.slot.id, r2.id, "the primary is its own");
  assert.equal(cellPrimary(layout, r1, switching)?.slot.id, r2.id, "the primary is still the primary");
  assert.equal(cellUpstream(layout, r1, cell)?.slot.id, r2.id, "without a switchover: the primary");
  assert.equal(cellUpstream(layout, r1, undefined), undefined);
});
