/**
 * The local world against real processes: PostgreSQL cells committing out of region, agents,
 * routers, the WAN emulator and the demo service. One small world for the whole file.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { after, before, test } from "node:test";
import { RINGFENCE_BIN } from "../cli/paths.js";
import { queryOnce } from "../lib/postgres.js";
import { signalTree } from "../lib/proctree.js";
import type { World } from "./supervisor.js";
import {
  postmasterPid,
  startTestWorld,
  streamingStandbys,
  type TestWorld,
  waitFor,
  waitForStreaming,
} from "./world-testing.js";

let tw: TestWorld;
/** The running world (replaced by the down/up test). */
let world: World;

before(async () => {
  tw = await startTestWorld();
  world = tw.world;
});

after(async () => await tw?.stop(), { timeout: 60_000 });

const routerUrl = (region: string) => tw.routerUrl(region);
const tenantOf = (cell: string) => tw.tenantOf(cell);
const put = (region: string, tenant: string, id: string, signal?: AbortSignal) =>
  tw.put(region, tenant, id, signal);

function primaryOf(cell: string): { host: string; port: number; region: string } {
  const home = world.topology.cells.list.find((c) => c.id === cell)?.home as string;
  const db = world.layout.databases.find((d) => d.cell === cell && d.region === home);
  if (!db) throw new Error(cell);
  return { host: db.host, port: db.port, region: home };
}

test("a write acknowledged in one region is read back through every other region's router", async () => {
  for (const cell of ["cell-0", "cell-1"]) {
    const tenant = tenantOf(cell);
    const w = await put("r1", tenant, `read-back-${cell}`);
    assert.equal(w.status, 200, JSON.stringify(w.body));
    assert.ok(w.lsn, "the write returns its commit LSN");
    for (const region of ["r2", "r3"]) {
      const res = await fetch(`${routerUrl(region)}/users/read-back-${cell}`, {
        headers: { "x-tenant": tenant, "x-ringfence-min-lsn": w.lsn ?? "" },
      });
      const body = (await res.json()) as { user?: { email?: string } };
      assert.equal(res.status, 200, `${region}: ${JSON.stringify(body)}`);
      assert.equal(body.user?.email, `read-back-${cell}@example.com`);
      assert.equal(res.headers.get("x-ringfence-cell"), cell);
    }
  }
});

test("a write is acknowledged only after an out-of-region standby flushed it", async () => {
  const cell = "cell-0";
  const primary = primaryOf(cell);
  const standbys = world.layout.databases.filter((d) => d.cell === cell && d.region !== primary.region);
  // The world serves once one standby streams; pausing "every" standby needs them all running.
  await waitForStreaming(primary, standbys.length);
  const pids = standbys.map((s) => postmasterPid(world, cell, s.region));
  for (const pid of pids) signalTree(pid, "SIGSTOP");
  let resumed = false;
  try {
    let settled = false;
    const write = put("r1", tenantOf(cell), "needs-a-standby").then((r) => {
      settled = true;
      return r;
    });
    await new Promise((r) => setTimeout(r, 5_000));
    assert.equal(settled, false, "the write was acknowledged while every out-of-region standby was paused");
    signalTree(pids[0] as number, "SIGCONT");
    resumed = true;
    const result = await write;
    assert.equal(result.status, 200, JSON.stringify(result.body));
  } finally {
    for (const pid of pids) signalTree(pid, "SIGCONT");
  }
  assert.ok(resumed);
  const rows = await queryOnce(
    primary.host,
    primary.port,
    "SELECT id FROM users WHERE id = 'needs-a-standby'",
  );
  assert.equal(rows.length, 1);
});

/** Writes continuously through the routers, keeping a ledger of every acknowledged write. */
function startWriter(): { stop: () => Promise<{ acked: { cell: string; id: string }[]; failed: number }> } {
  const acked: { cell: string; id: string }[] = [];
  let failed = 0;
  let running = true;
  let n = 0;
  const loop = (async () => {
    while (running) {
      const cell = n % 2 === 0 ? "cell-0" : "cell-1";
      const region = ["r1", "r2", "r3"][n % 3] as string;
      const id = `ledger-${n++}`;
      try {
        const r = await put(region, tenantOf(cell), id, AbortSignal.timeout(20_000));
        if (r.status === 200) acked.push({ cell, id });
        else failed++;
      } catch {
        failed++;
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      return { acked, failed };
    },
  };
}

/** Every acknowledged write is on its cell's primary. */
async function audit(acked: { cell: string; id: string }[]): Promise<string[]> {
  const missing: string[] = [];
  for (const cell of ["cell-0", "cell-1"]) {
    const p = primaryOf(cell);
    const ids = acked.filter((a) => a.cell === cell).map((a) => a.id);
    const rows = await queryOnce<{ id: string }>(p.host, p.port, "SELECT id FROM users WHERE id = ANY($1)", [
      ids,
    ]);
    const found = new Set(rows.map((r) => r.id));
    missing.push(...ids.filter((id) => !found.has(id)));
  }
  return missing;
}

async function statusDoc(): Promise<Record<string, unknown>> {
  const res = await fetch(
    `http://${world.layout.controller.host}:${world.layout.controller.port}/v1/status`,
    {
      headers: { authorization: `Bearer ${world.state.tokens().reader}` },
    },
  );
  return (await res.json()) as Record<string, unknown>;
}

let killedInstance = "";
let killedStandby = "";
const ledger: { cell: string; id: string }[] = [];

test("SIGKILL of a service instance, an agent and a standby loses no acknowledged write, and the world heals", async () => {
  const writer = startWriter();
  try {
    // A service instance: its agent restarts it.
    const instance = world.layout.instances.find((i) => i.cell === "cell-0" && i.region === "r1");
    assert.ok(instance);
    const instancePid = async () =>
      (
        (await statusDoc()) as { instances: { id: string; pid: number | null; health: string }[] }
      ).instances.find((i) => i.id === instance.id && i.health === "healthy")?.pid ?? null;
    const before = await instancePid();
    assert.ok(before);
    killedInstance = instance.id;
    process.kill(before, "SIGKILL");
    await waitFor(
      async () => {
        const now = await instancePid();
        return now !== null && now !== before;
      },
      30_000,
      "the instance to be restarted",
    );

    // A standby: its agent restarts it and it re-streams.
    const cell = "cell-1";
    const primary = primaryOf(cell);
    const standby = world.layout.databases.find((d) => d.cell === cell && d.region !== primary.region);
    assert.ok(standby);
    const standbyPid = postmasterPid(world, cell, standby.region);
    killedStandby = standby.id;
    process.kill(standbyPid, "SIGKILL");
    await waitFor(
      async () => {
        return (
          (await streamingStandbys(primary)).includes(standby.applicationName) &&
          postmasterPid(world, cell, standby.region) !== standbyPid
        );
      },
      60_000,
      "the standby to re-stream",
    );

    // An agent: the supervisor restarts it; the new agent clears what the old one left behind and
    // runs its zone again (its instance answers health checks with a new pid).
    const agentPid = world.pid("agent:r2/a");
    assert.ok(agentPid);
    const zoneInstance = world.layout.instances.find((i) => i.zone === "r2/a");
    assert.ok(zoneInstance);
    process.kill(agentPid, "SIGKILL");
    await waitFor(
      () => {
        const pid = world.pid("agent:r2/a");
        return pid !== null && pid !== agentPid;
      },
      30_000,
      "the agent to be restarted",
    );
    await waitFor(
      async () => {
        const res = await fetch(`http://${zoneInstance.host}:${zoneInstance.port}/healthz`).catch(
          () => undefined,
        );
        return res?.ok === true;
      },
      60_000,
      "the restarted agent's instance to serve",
    );
  } finally {
    const { acked, failed } = await writer.stop();
    ledger.push(...acked);
    // The kills heal in a second or two now: what matters is that writes went on and none is lost.
    assert.ok(acked.length >= 5, `only ${acked.length} writes acknowledged (${failed} failed)`);
    assert.deepEqual(await audit(acked), [], "acknowledged writes missing from their primary");
  }
  // status shows what happened meanwhile: restarts counted, and the exits in the event log.
  await waitFor(
    async () => {
      const status = (await statusDoc()) as {
        instances: { id: string; restarts: number | null; rollup: { health: string } }[];
      };
      const killed = status.instances.find((i) => i.id === killedInstance);
      return (killed?.restarts ?? 0) >= 1 && killed?.rollup.health === "healthy";
    },
    20_000,
    "status to show the instance restart",
  );
  const status = (await statusDoc()) as {
    cells: { cell: string; databases: { id: string; restarts: number | null; health: string }[] }[];
  };
  const standbyStatus = status.cells
    .find((c) => c.cell === "cell-1")
    ?.databases.find((d) => d.id === killedStandby);
  assert.ok((standbyStatus?.restarts ?? 0) >= 1, `standby restarts: ${JSON.stringify(standbyStatus)}`);
  const events = await eventsOf();
  assert.ok(events.some((e) => e.kind === "process.exited" && e.subject === `instance:${killedInstance}`));
  assert.ok(events.some((e) => e.kind === "process.exited" && e.subject === `database:${killedStandby}`));
});

async function eventsOf(): Promise<
  { kind: string; subject: string; actor: string; message: string; data: Record<string, unknown> }[]
> {
  const res = await fetch(`${controllerUrl()}/v1/events?limit=1000`, {
    headers: { authorization: `Bearer ${world.state.tokens().reader}` },
  });
  return ((await res.json()) as { events: [] }).events;
}

const controllerUrl = () => `http://${world.layout.controller.host}:${world.layout.controller.port}`;

test("the controller API: 401 without a valid token, 403 for a reader on operator routes, 400 naming the field", async () => {
  const tokens = world.state.tokens();
  const call = (path: string, token: string | undefined, body?: unknown) =>
    fetch(`${controllerUrl()}${path}`, {
      method: body === undefined ? "GET" : "POST",
      headers: {
        ...(token === undefined ? {} : { authorization: `Bearer ${token}` }),
        ...(body === undefined ? {} : { "content-type": "application/json" }),
      },
      ...(body === undefined ? {} : { body: typeof body === "string" ? body : JSON.stringify(body) }),
    });
  assert.equal((await call("/v1/status", undefined)).status, 401);
  assert.equal((await call("/v1/status", `${tokens.reader}x`)).status, 401);
  assert.equal((await call("/v1/status", tokens.reader)).status, 200);
  const fence = "/v1/cells/cell-1/fence";
  assert.equal((await call(fence, tokens.reader, { reason: "test" })).status, 403);
  assert.equal((await call(fence, tokens.agent, { reason: "test" })).status, 403);
  const missing = await call(fence, tokens.operator, {});
  assert.equal(missing.status, 400);
  const body = (await missing.json()) as { error: { code: string; problems: { path: string }[] } };
  assert.equal(body.error.code, "RINGFENCE_BAD_REQUEST");
  assert.ok(
    body.error.problems.some((p) => p.path.includes("reason")),
    JSON.stringify(body),
  );
  assert.equal((await call(fence, tokens.operator, "{not json")).status, 400);
  assert.equal(
    (await call("/v1/cells/cell-9/fence", tokens.operator, { reason: "no such cell" })).status,
    404,
  );
});

test("an operator action is carried out and recorded in the event log", async () => {
  const tokens = world.state.tokens();
  const instance = world.layout.instances.find((i) => i.cell === "cell-1" && i.region === "r3");
  assert.ok(instance);
  const pidOf = async () =>
    ((await statusDoc()) as { instances: { id: string; pid: number | null }[] }).instances.find(
      (i) => i.id === instance.id,
    )?.pid;
  const before = await pidOf();
  const res = await fetch(`${controllerUrl()}/v1/processes/restart`, {
    method: "POST",
    headers: { authorization: `Bearer ${tokens.operator}`, "content-type": "application/json" },
    body: JSON.stringify({ id: `instance:${instance.id}`, reason: "test: restart on request" }),
  });
  assert.equal(res.status, 200, await res.text());
  await waitFor(
    async () => {
      const now = await pidOf();
      return typeof now === "number" && now !== before;
    },
    30_000,
    "the agent to restart the instance",
  );
  const events = await eventsOf();
  const recorded = events.find((e) => e.actor === "operator" && e.subject === `instance:${instance.id}`);
  assert.ok(recorded, "the operator action is in the event log");
  assert.match(JSON.stringify(recorded), /test: restart on request/);
  assert.ok(
    events.some((e) => e.kind === "process.restart-requested" && e.subject === `instance:${instance.id}`),
  );
});

/** Runs the CLI against this world; resolves with its stdout, rejects on a non-zero exit. */
function cli(...args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [RINGFENCE_BIN, ...args, "--state-dir", world.state.root],
      { timeout: 30_000 },
      (err, stdout, stderr) =>
        err ? reject(new Error(`${args.join(" ")}: ${stderr || err.message}`)) : resolve(stdout),
    );
  });
}

/** The region of the instance that answered a probe of `cell` through `router`'s region. */
async function servedRegion(router: string, cell: string): Promise<string | undefined> {
  const res = await fetch(`${routerUrl(router)}/users/ringfence-probe`, {
    headers: { "x-tenant": tenantOf(cell) },
    signal: AbortSignal.timeout(2_000),
  });
  await res.arrayBuffer();
  return res.headers.get("x-ringfence-served-by")?.split("/")[2];
}

test("ringfence drain takes a region out of routing on every router (each reports the drain's table version), and undrain brings it back", async () => {
  const pairs = ["r1", "r2", "r3"].flatMap((router) =>
    ["cell-0", "cell-1"].map((cell) => ({ router, cell })),
  );
  // Before: r1's router serves from r1 (own region first).
  // (An instance in r1 ejected by the router after the kill test returns within its ejection time.)
  await waitFor(
    async () =>
      (await servedRegion("r1", "cell-0")) === "r1" && (await servedRegion("r1", "cell-1")) === "r1",
    60_000,
    "r1's router to serve both cells from r1 before the drain",
  );
  type Status = {
    world: { desiredVersion: number };
    routers: { region: string; tableVersion: number | null }[];
    drains: { id: string }[];
  };
  const before = (await tw.controller<Status>("/v1/status")).world.desiredVersion;
  const drained = JSON.parse(await cli("drain", "region", "r1", "--reason", "test: drain", "--json")) as {
    id: string;
  };
  const status = await tw.controller<Status>("/v1/status");
  assert.ok(
    status.drains.some((d) => d.id === drained.id),
    "the drain is listed",
  );
  const version = status.world.desiredVersion;
  assert.ok(version > before, `the drain bumped the desired version (${before} -> ${version})`);
  // Every router reports a table that has the drain in it (how fast is the drills' business).
  await waitFor(
    async () => {
      const { routers } = await tw.controller<Status>("/v1/status");
      return ["r1", "r2", "r3"].every(
        (r) => (routers.find((x) => x.region === r)?.tableVersion ?? 0) >= version,
      );
    },
    30_000,
    `every router to report routing table version ${version} (with ${drained.id})`,
  );
  // Nothing goes to r1 while it is drained, through any router.
  for (const { router, cell } of pairs) assert.notEqual(await servedRegion(router, cell), "r1");
  await cli("undrain", drained.id, "--reason", "test: undrain");
  await waitFor(
    async () =>
      (await servedRegion("r1", "cell-0")) === "r1" && (await servedRegion("r1", "cell-1")) === "r1",
    5_000,
    "r1's router to serve from r1 again after undrain",
  );
});

test("down, then up again on the same state directory: every acknowledged write is still there", async () => {
  assert.ok(ledger.length > 0, "the ledger of the kill test is needed");
  const extra = await put("r2", tenantOf("cell-1"), "before-restart");
  assert.equal(extra.status, 200);
  ledger.push({ cell: "cell-1", id: "before-restart" });
  await world.stop();
  await tw.restart();
  world = tw.world;
  assert.deepEqual(await audit(ledger), [], "acknowledged writes lost across down/up");
  const res = await fetch(`${routerUrl("r3")}/users/before-restart`, {
    headers: { "x-tenant": tenantOf("cell-1") },
  });
  assert.equal(res.status, 200);
});
