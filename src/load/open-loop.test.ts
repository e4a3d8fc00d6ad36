import assert from "node:assert/strict";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { test } from "node:test";
import { HttpClient } from "./http.js";
import { type Arrival, type LoopClock, runOpenLoop } from "./open-loop.js";
import { arrivalOffsets } from "./schedule.js";

/** Fake time: sleeping advances it; `advance` simulates work that blocks the client. */
function fakeClock(): LoopClock & { advance(ms: number): void } {
  let now = 1_000;
  return {
    now: () => now,
    sleep: async (ms) => {
      now += ms;
    },
    advance: (ms) => {
      now += ms;
    },
  };
}

test("arrivals start on schedule with fake time, and a client that falls behind starts them late but never skips them", async () => {
  const clock = fakeClock();
  const starts: { arrival: Arrival; at: number }[] = [];
  const result = await runOpenLoop({
    offsets: arrivalOffsets({ rps: 100, durationMs: 1_000 }),
    clock,
    send: async (arrival) => {
      starts.push({ arrival, at: clock.now() });
      if (arrival.seq === 10) clock.advance(250); // the client stalls for 250 ms
    },
    dropped: () => assert.fail("nothing is dropped below the cap"),
  });
  assert.equal(result.scheduled, 100);
  assert.equal(result.started, 100);
  assert.equal(result.dropped, 0);
  // Arrivals due during the stall start late, right after it, with their original due times.
  const late = starts.filter((s) => s.at - s.arrival.dueAt >= 1);
  assert.ok(late.length >= 20, `${late.length} late starts`);
  assert.ok(result.maxStartLagMs >= 240 && result.maxStartLagMs <= 250, String(result.maxStartLagMs));
  for (const s of starts) assert.equal(s.arrival.dueAt, 1_000 + s.arrival.seq * 10);
});

test("arrivals beyond the in-flight cap are dropped and reported, never silently skipped", async () => {
  const clock = fakeClock(); // the whole schedule passes before any (real-time) answer arrives
  const dropped: number[] = [];
  const result = await runOpenLoop({
    offsets: arrivalOffsets({ rps: 100, durationMs: 300 }),
    maxInFlight: 5,
    clock,
    send: () => new Promise<void>((resolve) => setTimeout(resolve, 20)),
    dropped: (arrival) => dropped.push(arrival.seq),
  });
  assert.equal(result.scheduled, 30);
  assert.equal(result.started + result.dropped, 30);
  assert.equal(dropped.length, result.dropped);
  assert.equal(result.started, 5);
  assert.deepEqual(dropped.slice(0, 3), [5, 6, 7]);
});

test("a slow server does not reduce the requests started, and latency counts from the scheduled time", async () => {
  // One request at a time, 40 ms each: capacity 25/s, offered 50/s for 400 ms.
  let busyUntil = 0;
  let answered = 0;
  const server = createServer((_req, res) => {
    const now = Date.now();
    busyUntil = Math.max(busyUntil, now) + 40;
    setTimeout(() => {
      answered++;
      res.end("ok");
    }, busyUntil - now);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const target = { region: "r", host: "127.0.0.1", port: (server.address() as AddressInfo).port };
  const client = new HttpClient();
  const latencies: number[] = [];
  let sent = 0;
  let inFlightPeak = 0;
  try {
    const result = await runOpenLoop({
      offsets: arrivalOffsets({ rps: 50, durationMs: 400 }),
      send: async (arrival) => {
        inFlightPeak = Math.max(inFlightPeak, ++sent - answered);
        const r = await client.send({ target, method: "GET", path: "/", headers: {}, timeoutMs: 10_000 });
        assert.equal(r.kind, "response");
        latencies.push(performance.now() - arrival.dueAt);
      },
      dropped: () => assert.fail("nothing is dropped below the cap"),
    });
    assert.equal(result.started, 20, "every arrival started although answers lag");
    assert.equal(answered, 20);
    // Sends were not paced by answers: several were out at once (a closed loop has one at a time).
    assert.ok(inFlightPeak > 1, `at most ${inFlightPeak} request in flight: sends waited for answers`);
    // The server answers one at a time, 40 ms each, so this is a lower bound by construction.
    // The last one waited behind 19 others: ≈ 20 × 40 − 380 = 420 ms from its scheduled time.
    const worst = Math.max(...latencies);
    assert.ok(worst >= 350, `worst latency ${worst} ms should include the queueing`);
  } finally {
    client.close();
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  }
});
