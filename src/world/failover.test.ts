/**
 * Failover in a real world: PostgreSQL cells, agents, routers and the WAN emulator, with writes
 * going on. Every acknowledged write is kept in a ledger and looked for afterwards.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { RINGFENCE_BIN } from "../cli/paths.js";
import { signalTree } from "../lib/proctree.js";
import {
  missingIn,
  startTestWorld,
  startWriter,
  streamingStandbys,
  type TestWorld,
  waitFor,
} from "./world-testing.js";

let tw: TestWorld;

before(async () => {
  tw = await startTestWorld();
});

after(async () => await tw?.stop(), { timeout: 90_000 });

async function primaryOf(cell: string): Promise<string> {
  const state = (await tw.cells()).find((c) => c.cell === cell);
  assert.ok(state);
  return state.primary;
}

test("a partition that isolates only the controller fails nothing over", async () => {
  const before = await tw.cells();
  const pid = tw.world.pid("controller");
  assert.ok(pid);
  // The controller hears nothing for 8 s (longer than any detection window), then everything at once.
  signalTree(pid, "SIGSTOP");
  try {
    await new Promise((r) => setTimeout(r, 8_000));
  } finally {
    signalTree(pid, "SIGCONT");
  }
  await new Promise((r) => setTimeout(r, 4_000));
  const afterwards = await tw.cells();
  assert.deepEqual(
    afterwards.map((c) => [c.cell, c.primary, c.epoch, c.fenced]),
    before.map((c) => [c.cell, c.primary, c.epoch, c.fenced]),
  );
});

test("SIGKILL of the primary's whole region under writes: failover on its own, no acknowledged write lost, the old primary rejoins", async (t) => {
  const cell = "cell-0";
  const lost = await primaryOf(cell);
  const survivors = ["r1", "r2", "r3"].filter((r) => r !== lost);
  const writer = startWriter(tw, survivors, "kill");
  // And `ringfence load` alongside, open loop, through the surviving regions' routers, with its ledger.
  const ledger = join(tw.dir, "kill-ledger.jsonl");
  const load = cliResult(
    "load",
    "--rps",
    "40",
    "--tenants",
    "8",
    "--write-ratio",
    "0.7",
    "--duration",
    "20s",
    "--ledger",
    ledger,
    ...survivors.flatMap((r) => ["--region", r]),
  );
  await new Promise((r) => setTimeout(r, 2_000));
  const killedAt = Date.now();
  await tw.world.killRegion(lost);
  let completed = false;
  try {
    await waitFor(
      async () => {
        const p = await tw.phase(cell);
        return p.phase === "serving" && p.primary !== lost && !p.fenced;
      },
      60_000,
      `${cell} to fail over away from ${lost}`,
    );
    completed = true;
    const failedOverAt = Date.now();
    // Writes to the cell are accepted again.
    await waitFor(
      () => writer.acked.some((a) => a.cell === cell && a.atMs > failedOverAt),
      20_000,
      "writes to resume",
    );
  } finally {
    await new Promise((r) => setTimeout(r, completed ? 2_000 : 0));
    await writer.stop();
  }
  // Sent after the kill: a write in flight at the kill says nothing about the new primary.
  const firstAfter = writer.acked.find((a) => a.cell === cell && a.sentAtMs > killedAt);
  const lastBefore = [...writer.acked].reverse().find((a) => a.cell === cell && a.atMs <= killedAt);
  assert.ok(firstAfter && lastBefore);
  t.diagnostic(
    `writes to ${cell} accepted again ${firstAfter.atMs - killedAt} ms after its primary's region was killed`,
  );
  t.diagnostic(
    `${writer.acked.length} writes acknowledged, ${writer.failures.filter((f) => f.cell === cell).length} failed for ${cell} during the outage`,
  );
  const history = await tw.controller<{
    history: {
      cell: string;
      kind: string;
      record: { steps: Record<string, number>; decision: { proof?: string } };
    }[];
  }>("/v1/failover");
  const record = history.history.find((h) => h.cell === cell);
  assert.ok(record, "the failover is in the history");
  assert.equal(record.kind, "automatic");
  const steps = Object.entries(record.record.steps)
    .map(([k, v]) => `${k} +${v - killedAt} ms`)
    .join(", ");
  t.diagnostic(`failover steps after the kill: ${steps}; ${record.record.decision.proof}`);
  const now = await primaryOf(cell);
  assert.notEqual(now, lost);
  assert.deepEqual(await missingIn(tw, cell, now, writer.acked), [], "acknowledged writes lost");
  assert.deepEqual(await missingIn(tw, "cell-1", await primaryOf("cell-1"), writer.acked), []);
  // The load's ledger, audited by `ringfence audit`: every acknowledged write is on its cell's primary.
  const loaded = await load;
  assert.equal(loaded.code, 0, loaded.stderr);
  t.diagnostic(
    loaded.stdout
      .split("\n")
      .find((l) => l.includes("writes:"))
      ?.trim() ?? "",
  );
  const audited = await cliResult("audit", "--ledger", ledger);
  assert.equal(audited.code, 0, `${audited.stdout}${audited.stderr}`);
  assert.match(audited.stdout, /PASS/);

  // The region returns: the old primary is rewound and streams from the new one, with everything.
  tw.world.restoreRegion(lost);
  const newPrimary = tw.world.layout.databases.find((d) => d.cell === cell && d.region === now);
  const old = tw.world.layout.databases.find((d) => d.cell === cell && d.region === lost);
  assert.ok(newPrimary && old);
  await waitFor(
    async () => (await streamingStandbys(newPrimary)).includes(old.applicationName),
    120_000,
    `the old primary in ${lost} to stream from ${now}`,
  );
  await waitFor(
    async () => (await missingIn(tw, cell, lost, writer.acked).catch(() => ["?"])).length === 0,
    30_000,
    "the rejoined standby to have every acknowledged write",
  );

  // Failback: once home has been healthy for the window (5 s in this topology), the cell switches
  // back home on its own, under writes, and nothing acknowledged is lost.
  const back = startWriter(tw, ["r1", "r2", "r3"], "failback");
  try {
    await waitFor(
      async () => {
        const p = await tw.phase(cell);
        return p.phase === "serving" && p.primary === lost;
      },
      60_000,
      `${cell} to fail back to ${lost}`,
    );
    await new Promise((r) => setTimeout(r, 1_000));
  } finally {
    await back.stop();
  }
  const failback = (
    await tw.controller<{
      history: { cell: string; kind: string; record: { steps: Record<string, number> } }[];
    }>("/v1/failover")
  ).history.find((h) => h.cell === cell && h.kind === "failback");
  assert.ok(failback, "the failback is in the history");
  const paused = (failback.record.steps.unfenced ?? 0) - (failback.record.steps.fenced ?? 0);
  t.diagnostic(`failback to ${lost}: writes paused ${paused} ms`);
  const all = [...writer.acked, ...back.acked];
  assert.deepEqual(
    await missingIn(tw, cell, lost, all),
    [],
    "acknowledged writes lost across failover and failback",
  );
});

test("ringfence switchover: planned, steps in order, writes resume on the new primary, no acknowledged write lost", async (t) => {
  const cell = "cell-1";
  const from = await primaryOf(cell);
  const to = ["r1", "r2", "r3"].find((r) => r !== from) as string;
  const writer = startWriter(tw, ["r1", "r2", "r3"], "switch");
  let out: {
    pauseMs: number;
    kind: string;
    record: { from: string; to: string; steps: Record<string, number> };
  };
  try {
    await new Promise((r) => setTimeout(r, 1_000));
    out = JSON.parse(
      await cli("switchover", cell, "--to", to, "--reason", "test: planned switchover", "--json"),
    ) as typeof out;
    await new Promise((r) => setTimeout(r, 1_000));
  } finally {
    await writer.stop();
  }
  // How long the pause was is the drill's business (npm run drill:switchover); here: what happened, in order.
  t.diagnostic(`switchover ${from} -> ${to}: writes paused ${out.pauseMs} ms`);
  assert.equal(out.kind, "switchover");
  assert.equal(out.record.from, from);
  assert.equal(out.record.to, to);
  const { steps } = out.record;
  const order = ["fenced", "writersFenced", "caughtUp", "promoted", "unfenced"];
  for (const step of order)
    assert.equal(typeof steps[step], "number", `step ${step} recorded: ${JSON.stringify(steps)}`);
  for (let i = 1; i < order.length; i++) {
    const [before, after] = [steps[order[i - 1] as string] as number, steps[order[i] as string] as number];
    assert.ok(before <= after, `${order[i - 1]} before ${order[i]}: ${JSON.stringify(steps)}`);
  }
  assert.equal(steps.aborted, undefined, "the switchover was not aborted");
  assert.equal(await primaryOf(cell), to);
  const cellAcks = writer.acked.filter((a) => a.cell === cell);
  assert.ok(
    cellAcks.some((a) => a.sentAtMs > (steps.unfenced as number)),
    "writes to the cell were acknowledged again after it was unfenced",
  );
  assert.deepEqual(await missingIn(tw, cell, to, writer.acked), []);
});

/** Runs the CLI against this world; resolves with its exit code and output, whatever the code. */
function cliResult(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [RINGFENCE_BIN, ...args, "--state-dir", tw.world.state.root],
      { timeout: 120_000 },
      (err, stdout, stderr) =>
        resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

/** Runs the CLI against this world; resolves with its stdout, rejects on a non-zero exit. */
function cli(...args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [RINGFENCE_BIN, ...args, "--state-dir", tw.world.state.root],
      { timeout: 90_000 },
      (err, stdout, stderr) =>
        err ? reject(new Error(`${args.join(" ")}: ${stderr || err.message}`)) : resolve(stdout),
    );
  });
}

test("partition of the primary's region: it acknowledges nothing, failover happens outside, and after healing and failback nothing is lost", async (t) => {
  const cell = "cell-0";
  const isolated = await primaryOf(cell);
  const outside = ["r1", "r2", "r3"].filter((r) => r !== isolated);
  const inside = startWriter(tw, [isolated], "inside");
  const out = startWriter(tw, outside, "outside");
  let cutAt = 0;
  let healedAt = 0;
  try {
    await new Promise((r) => setTimeout(r, 1_500));
    cutAt = Date.now();
    for (const r of outside) tw.world.wan.link(isolated, r).partition();
    await waitFor(
      async () => {
        const p = await tw.phase(cell);
        return p.phase === "serving" && p.primary !== isolated;
      },
      60_000,
      `${cell} to fail over out of the partitioned ${isolated}`,
    );
    t.diagnostic(`failed over out of the partition ${Date.now() - cutAt} ms after the cut`);
    await new Promise((r) => setTimeout(r, 2_000));
    healedAt = Date.now();
    for (const r of outside) tw.world.wan.link(isolated, r).heal();
    // After healing: the old primary rejoins, and after the window the cell fails back home.
    await waitFor(
      async () => {
        const p = await tw.phase(cell);
        return p.phase === "serving" && p.primary === isolated;
      },
      120_000,
      `${cell} to fail back to ${isolated} after the partition healed`,
    );
    await new Promise((r) => setTimeout(r, 1_000));
  } finally {
    for (const r of outside) tw.world.wan.link(isolated, r).heal();
    await Promise.all([inside.stop(), out.stop()]);
  }
  // Sent from inside the partition after the cut and acknowledged before the heal: must be none for
  // the cell whose primary was cut off (it could not reach its synchronous standbys).
  const acknowledgedInside = inside.acked.filter(
    (a) => a.cell === cell && a.sentAtMs > cutAt && a.atMs < healedAt,
  );
  assert.deepEqual(acknowledgedInside, [], "the isolated primary acknowledged writes");
  const all = [...inside.acked, ...out.acked];
  assert.deepEqual(await missingIn(tw, cell, await primaryOf(cell), all), [], "acknowledged writes lost");
  assert.deepEqual(await missingIn(tw, "cell-1", await primaryOf("cell-1"), all), []);
});

test("primary and one of two standbys killed together: no automatic failover, consent with a non-zero estimate, approval proceeds and the loss is reported", async (t) => {
  const cell = "cell-1";
  const primary = await primaryOf(cell);
  const standbys = tw.world.layout.databases.filter((d) => d.cell === cell && d.region !== primary);
  const [gone, survivor] = standbys as [(typeof standbys)[number], (typeof standbys)[number]];
  const writer = startWriter(
    tw,
    ["r1", "r2", "r3"].filter((r) => r !== primary),
    "consent",
  );
  try {
    await new Promise((r) => setTimeout(r, 2_000));
    await Promise.all([tw.world.killRegion(primary), tw.world.killZone(gone.zone)]);
    const waiting = await waitForPhase(cell, "awaiting-consent", 60_000);
    const estimate = waiting.failover?.estimate as { bytes: number; seconds: number; basis: string };
    t.diagnostic(
      `consent asked: estimated loss ${estimate.bytes} bytes, up to ${estimate.seconds} s (${estimate.basis})`,
    );
    assert.ok(estimate.seconds > 0 || estimate.bytes > 0, "the estimate is not zero");
    assert.equal((await tw.phase(cell)).fenced, true, "writers stay fenced while consent is awaited");
    const approved = await cli(
      "failover",
      "approve",
      cell,
      "--accept-data-loss",
      "--reason",
      "test: consent drill",
    );
    assert.match(approved, new RegExp(`promoting ${survivor.region}`));
    await waitFor(
      async () => {
        const p = await tw.phase(cell);
        return p.phase === "serving" && p.primary === survivor.region;
      },
      30_000,
      `${cell} to serve from ${survivor.region}`,
    );
    // Under the strict durability policy the new primary has no out-of-region standby left, so
    // writes wait until one returns: bring back the lost standby and the old primary's region.
    tw.world.restoreZone(gone.zone);
    tw.world.restoreRegion(primary);
    const resumedAt = Date.now();
    await waitFor(
      () => writer.acked.some((a) => a.cell === cell && a.sentAtMs > resumedAt),
      90_000,
      "writes to resume",
    );
  } finally {
    await writer.stop();
  }
  const lostWrites = await missingIn(tw, cell, survivor.region, writer.acked);
  t.diagnostic(`acknowledged writes missing after the consented failover: ${lostWrites.length}`);
  // The missing standby returned: the controller measures what the failover lost.
  await waitFor(
    async () => {
      const events = await tw.controller<{
        events: { kind: string; subject: string; data: { bytes?: number } }[];
      }>("/v1/events?limit=1000");
      const measured = events.events.find((e) => e.kind === "failover.loss-measured" && e.subject === cell);
      if (measured)
        t.diagnostic(`loss measured once the standby returned: ${measured.data.bytes} bytes of WAL`);
      return measured !== undefined;
    },
    90_000,
    "the loss to be measured",
  );
});

async function waitForPhase(cell: string, phase: string, timeoutMs: number) {
  let last: { phase: string; failover: Record<string, unknown> | null } | undefined;
  await waitFor(
    async () => {
      const doc = await tw.controller<{
        cells: { cell: { cell: string }; phase: string; failover: Record<string, unknown> | null }[];
      }>("/v1/failover");
      last = doc.cells.find((c) => c.cell.cell === cell);
      return last?.phase === phase;
    },
    timeoutMs,
    `${cell} to be ${phase}`,
  );
  return last as { phase: string; failover: Record<string, unknown> | null };
}
