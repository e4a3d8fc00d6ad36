/**
 * The agent's loops against a fake controller: the desired state by long poll (and no spinning
 * when the controller answers at once), heartbeats right after a change, and observer probes of a
 * primary in another region in every heartbeat. The agent's zone runs no process (database.test.ts
 * covers the databases); one real PostgreSQL stands in for the primary in another region, where this
 * zone's observer reaches it through the WAN.
 */
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import {
  baseSettings,
  findPgBinaries,
  initPrimary,
  pgRunAs,
  signalGroup,
  spawnPostgres,
  waitReady,
  writeSettings,
} from "../lib/postgres.js";
import { parseTopology } from "../topology/load.js";
import type { DesiredState, Heartbeat } from "../world/contracts.js";
import { buildLayout, reach } from "../world/layout.js";
import { StateDir, type WorldConfig } from "../world/state.js";
import { Agent } from "./agent.js";

const TOPOLOGY = `
name: agent-test
regions:
  - { name: r1, zones: [a, b], latency: { r2: 4ms } }
  - { name: r2, zones: [a] }
cells: { count: 1, replicas: 2, syncQuorum: 1, buckets: 64 }
services:
  - name: directory
    command: ringfence demo directory
    instances: 1
    slos:
      - { scenario: users, routes: ["GET /users/:id"], availability: 99.9, latency: 300ms }
`;

const ZONE = "r1/b"; // the cell's database, writer and instances are all in zone a

let dir: string;
let server: Server;
let controllerUrl: string;
let agent: Agent;
let desired: DesiredState = {
  version: 1,
  zone: ZONE,
  cells: [{ cell: "cell-0", primary: "r1", epoch: 1, fenced: false }],
  restarts: {},
};
/** false: answer at once, as a controller that does not know long polls. */
let longPoll = false;
const desiredRequests: { at: number; query: string }[] = [];
const heartbeats: { at: number; body: Heartbeat }[] = [];
const held = new Set<() => void>();
/** Held long polls whose client went away before they were answered. */
let abandoned = 0;
/** The cell's database in r2 as this zone reaches it (r1's end of the WAN link, the slot's port). */
let remote: ChildProcess | undefined;

function answerDesired(res: ServerResponse) {
  res.writeHead(200, { "content-type": "application/json" });
  res.end(JSON.stringify(desired));
}

function handle(req: IncomingMessage, res: ServerResponse) {
  const url = new URL(req.url ?? "/", "http://x");
  if (req.method === "GET" && url.pathname === `/v1/agents/${encodeURIComponent(ZONE)}/desired`) {
    desiredRequests.push({ at: Date.now(), query: url.search });
    const after = Number(url.searchParams.get("after") ?? -1);
    const waitMs = Math.min(Number(url.searchParams.get("waitMs") ?? 0), 30_000);
    if (!longPoll || desired.version > after || waitMs === 0) return answerDesired(res);
    const release = () => {
      held.delete(release);
      clearTimeout(timer);
      if (!res.writableEnded) answerDesired(res);
    };
    const timer = setTimeout(release, waitMs);
    held.add(release);
    req.on("close", () => {
      if (!res.writableEnded) abandoned++;
      held.delete(release);
      clearTimeout(timer);
    });
    return;
  }
  if (req.method === "POST" && url.pathname === `/v1/agents/${encodeURIComponent(ZONE)}/heartbeat`) {
    let body = "";
    req.on("data", (d) => {
      body += d;
    });
    req.on("end", () => {
      heartbeats.push({ at: Date.now(), body: JSON.parse(body) as Heartbeat });
      res.writeHead(204).end();
    });
    return;
  }
  res.writeHead(404).end();
}

/** Changes the desired state, answering the long polls held meanwhile. */
function publish(next: Omit<DesiredState, "version" | "zone">) {
  desired = { ...next, version: desired.version + 1, zone: ZONE };
  for (const release of [...held]) release();
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "ringfence-agent-"));
  chmodSync(dir, 0o755);
  server = createServer(handle);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const address = server.address();
  controllerUrl = `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}`;
  const topologyFile = join(dir, "topology.yaml");
  writeFileSync(topologyFile, TOPOLOGY);
  const topology = parseTopology(TOPOLOGY, topologyFile);
  // An address base of its own: the observer's probes go to this world's (empty) WAN addresses.
  const layout = buildLayout(topology, 90 + Math.floor(Math.random() * 100));
  assert.ok(!layout.databases.some((d) => d.zone === ZONE) && !layout.instances.some((i) => i.zone === ZONE));
  const slot = layout.databases.find((d) => d.cell === "cell-0" && d.region === "r2");
  assert.ok(slot);
  const at = reach(layout, "r1", "r2", slot);
  const bin = findPgBinaries();
  const runAs = pgRunAs();
  const pgDir = join(dir, "remote-primary");
  await initPrimary(bin, pgDir, runAs);
  writeSettings(pgDir, baseSettings(at.host, at.port), runAs);
  remote = spawnPostgres(bin, pgDir, runAs, join(dir, "remote-primary.log"));
  await waitReady(at.host, at.port);
  const state = new StateDir(join(dir, "state"));
  mkdirSync(state.root, { recursive: true });
  writeFileSync(state.secretFile, "00".repeat(32));
  const world: WorldConfig = {
    version: 1,
    topologyFile,
    topologySource: topologyFile,
    addressBase: layout.addressBase,
    pgRoot: join(dir, "pg"),
    createdAt: new Date().toISOString(),
  };
  agent = new Agent({
    zone: ZONE,
    state,
    world,
    topology,
    layout,
    controllerUrl,
    agentToken: "agt-test",
    ringfenceBin: "/nonexistent",
  });
  await agent.start();
});

after(async () => {
  await agent?.stop();
  await stopRemote();
  for (const release of [...held]) release();
  server?.closeAllConnections();
  await new Promise((r) => server?.close(r));
  rmSync(dir, { recursive: true, force: true });
});

async function stopRemote(): Promise<void> {
  const child = remote;
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  await new Promise<void>((resolve) => {
    child.once("exit", () => resolve());
    signalGroup(child, "SIGCONT");
    child.kill("SIGINT"); // fast shutdown
    setTimeout(() => signalGroup(child, "SIGKILL"), 10_000).unref();
  });
}

const until = async (what: string, check: () => boolean, timeoutMs = 10_000) => {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
};

test("a controller that answers at once is asked about once a second, not in a loop", async () => {
  await until("the first desired state", () => heartbeats.some((h) => h.body.desiredVersion === 1));
  const from = desiredRequests.length;
  await new Promise((r) => setTimeout(r, 2_500));
  const asked = desiredRequests.length - from;
  assert.ok(asked >= 2 && asked <= 4, `${asked} desired-state requests in 2.5 s`);
  assert.match(desiredRequests.at(-1)?.query ?? "", /^\?after=1&waitMs=10000$/);
});

test("with long polls, a new desired state comes on the held request and is heartbeated at once", async (t) => {
  longPoll = true;
  await until("a long poll to be held", () => held.size > 0, 5_000);
  const from = desiredRequests.length;
  await new Promise((r) => setTimeout(r, 1_000));
  assert.ok(desiredRequests.length - from <= 1, "the agent kept asking while its request was held");
  // The cell fails over to r2: this zone's agent now observes a primary in another region.
  const requestsBefore = desiredRequests.length;
  const beatsBefore = heartbeats.length;
  publish({ cells: [{ cell: "cell-0", primary: "r2", epoch: 2, fenced: true }], restarts: {} });
  await until("a heartbeat with the new version", () => heartbeats.some((h) => h.body.desiredVersion === 2));
  // The change came on the held long poll: the agent did not ask for version 1's successor again.
  assert.ok(
    desiredRequests.slice(requestsBefore).every((r) => !/after=1&/.test(r.query)),
    `the agent asked again instead of taking the held answer: ${JSON.stringify(desiredRequests.slice(requestsBefore))}`,
  );
  // And it heartbeated the change at once: at most one heartbeat already on its way still says version 1.
  const since = heartbeats.slice(beatsBefore);
  const first = since.findIndex((h) => h.body.desiredVersion === 2);
  assert.ok(first <= 1, `${first} heartbeats with the old version came after the change`);
  t.diagnostic(`heartbeats after the change before the new version: ${first}`);
});

test("every heartbeat carries the observer's probes; failing probes send heartbeats at once, at most 10 a second", async () => {
  await until("the r2 primary observed reachable", () =>
    heartbeats.some((h) => (h.body.observations ?? []).some((o) => o.target === "cell-0/r2" && o.ok)),
  );
  await stopRemote();
  const from = heartbeats.length;
  const started = Date.now();
  await new Promise((r) => setTimeout(r, 2_000));
  const window = heartbeats.slice(from);
  const elapsedS = (Date.now() - started) / 1_000;
  // Every probe (each 500 ms) fails now; each failure is a heartbeat of its own, besides the tick's.
  const last = window.at(-1)?.body.observations?.find((o) => o.target === "cell-0/r2");
  assert.equal(last?.ok, false);
  assert.ok((last?.consecutiveFailures ?? 0) >= 3, JSON.stringify(last));
  assert.ok(
    window.length >= 2 * elapsedS,
    `${window.length} heartbeats in ${elapsedS} s: failures did not hurry them`,
  );
  assert.ok(window.length <= 10 * elapsedS + 1, `${window.length} heartbeats in ${elapsedS} s`);
  for (let i = 1; i < window.length; i++) {
    const gap = (window[i]?.at ?? 0) - (window[i - 1]?.at ?? 0);
    assert.ok(gap >= 90, `two heartbeats ${gap} ms apart`);
  }
});

test("stop abandons a held long poll, and a stopped agent neither asks nor heartbeats", async () => {
  await until("a long poll to be held", () => held.size > 0, 5_000);
  const abandonedBefore = abandoned;
  await agent.stop();
  // Stopping abandons the held request (its connection closes unanswered) instead of waiting for it.
  await until("the held long poll to be abandoned", () => held.size === 0, 5_000);
  assert.equal(abandoned, abandonedBefore + 1, "stop waited for the held long poll to be answered");
  const beats = heartbeats.length;
  const asked = desiredRequests.length;
  await new Promise((r) => setTimeout(r, 1_200));
  assert.equal(heartbeats.length, beats, "a stopped agent heartbeated");
  assert.equal(desiredRequests.length, asked, "a stopped agent asked for its desired state");
});
