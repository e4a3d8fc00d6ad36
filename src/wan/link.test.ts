import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { DEFAULT_RETRANSMIT_TIMEOUT_MS, Link, type LinkChange, linkName } from "./link.js";

/** A `random` that replays the given values in a loop. */
function replay(...values: number[]): () => number {
  let i = 0;
  return () => values[i++ % values.length] ?? 0;
}

test("a link is named after its unordered region pair", () => {
  assert.equal(linkName("us-east", "eu-west"), "eu-west~us-east");
  assert.equal(linkName("eu-west", "us-east"), "eu-west~us-east");
  assert.equal(new Link("us-east", "eu-west", { latencyMs: 40 }).name, "eu-west~us-east");
  assert.throws(() => linkName("us-east", "us-east"), /two different regions/);
  assert.throws(() => linkName("", "us-east"), RangeError);
});

test("defaults: no jitter, no loss, 200 ms retransmission timeout, not partitioned", () => {
  const link = new Link("a", "b", { latencyMs: 25 });
  assert.deepEqual(link.state(), {
    name: "a~b",
    latencyMs: 25,
    jitterMs: 0,
    loss: 0,
    retransmitTimeoutMs: DEFAULT_RETRANSMIT_TIMEOUT_MS,
    partitioned: false,
    connections: 0,
    bytes: { forward: 0, backward: 0 },
  });
  assert.equal(DEFAULT_RETRANSMIT_TIMEOUT_MS, 200);
  const state = link.state();
  assert.deepEqual(JSON.parse(JSON.stringify(state)), state, "the state is JSON-able");
});

test("settings are validated with messages that name the link and field", () => {
  const link = new Link("a", "b", { latencyMs: 1 });
  assert.throws(() => link.setLatency(-1), /a~b: latencyMs/);
  assert.throws(() => link.setLatency(Number.NaN), /latencyMs/);
  assert.throws(() => link.setJitter(Number.POSITIVE_INFINITY), /jitterMs/);
  assert.throws(() => link.setLoss(1.5), /loss must be a ratio/);
  assert.throws(() => link.setLoss(0.1, { retransmitTimeoutMs: -5 }), /retransmitTimeoutMs/);
  assert.throws(() => new Link("a", "b", { latencyMs: -3 }), /latencyMs/);
  assert.equal(link.latencyMs, 1, "a rejected setting leaves the link unchanged");
});

test("sampled delay is latency, plus jitter scaled by a uniform draw, plus the timeout when lost", () => {
  const plain = new Link("a", "b", { latencyMs: 30, random: replay(0.99) });
  plain.setLoss(0);
  const session = plain.open(() => {});
  assert.equal(session.sampleDelayMs(), 30);

  const jittery = new Link("a", "b", { latencyMs: 30, jitterMs: 10, random: replay(0.5) });
  assert.equal(jittery.open(() => {}).sampleDelayMs(), 35);

  // Draws alternate jitter, loss: 0.5 jitter, then 0.05 < 0.1 (lost), then 0.5, then 0.5 (kept).
  const lossy = new Link("a", "b", {
    latencyMs: 30,
    jitterMs: 10,
    loss: 0.1,
    random: replay(0.5, 0.05, 0.5, 0.5),
  });
  const s = lossy.open(() => {});
  assert.equal(s.sampleDelayMs(), 35 + 200);
  assert.equal(s.sampleDelayMs(), 35);
});

test("sampled delays stay within [latency, latency + jitter + timeout] and loss 1 always pays the timeout", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 1000 }),
      fc.integer({ min: 0, max: 100 }),
      fc.double({ min: 0, max: 1, noNaN: true }),
      fc.integer({ min: 0, max: 2 ** 31 }),
      (latencyMs, jitterMs, loss, seed) => {
        let x = seed;
        const random = (): number => {
          x = (Math.imul(x, 1103515245) + 12345) >>> 0;
          return x / 2 ** 32;
        };
        const link = new Link("a", "b", { latencyMs, jitterMs, loss, random });
        const d = link.open(() => {}).sampleDelayMs();
        assert.ok(d >= latencyMs && d <= latencyMs + jitterMs + 200);
        link.setLoss(1);
        assert.ok(link.open(() => {}).sampleDelayMs() >= latencyMs + 200);
      },
    ),
    { numRuns: 200 },
  );
});

test("heal() breaks only the sessions that lost something during the partition", () => {
  const link = new Link("a", "b", { latencyMs: 0 });
  let brokenA = 0;
  let brokenB = 0;
  const a = link.open(() => brokenA++);
  const b = link.open(() => brokenB++);
  assert.equal(link.state().connections, 2);

  link.partition();
  link.partition();
  assert.equal(a.partitioned, true);
  a.markLost();
  link.heal();
  link.heal();
  assert.equal(brokenA, 1);
  assert.equal(brokenB, 0);
  assert.equal(link.state().connections, 1, "the broken session no longer counts");
  assert.equal(b.partitioned, false);

  a.close();
  b.close();
  b.close();
  assert.equal(link.state().connections, 0);
});

test("onChange reports every change with its reason until disposed", () => {
  const link = new Link("a", "b", { latencyMs: 10 });
  const seen: LinkChange[] = [];
  const subscription = link.onChange((change) => seen.push(change));
  link.setLatency(20);
  link.setJitter(5);
  link.setLoss(0.01);
  link.partition();
  link.partition();
  link.heal();
  const session = link.open(() => {});
  session.recordDelivered("forward", 100);
  session.recordDelivered("backward", 7);
  session.close();
  subscription.dispose();
  subscription.dispose();
  link.setLatency(30);

  assert.deepEqual(
    seen.map((c) => c.reason),
    ["latency", "jitter", "loss", "partition", "heal", "connections", "connections"],
  );
  assert.equal(seen[0]?.state.latencyMs, 20);
  assert.equal(seen[3]?.state.partitioned, true);
  assert.equal(seen[5]?.state.connections, 1);
  assert.deepEqual(link.state().bytes, { forward: 100, backward: 7 });
});
