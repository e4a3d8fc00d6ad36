import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import net, { type Socket } from "node:net";
import { performance } from "node:perf_hooks";
import { type TestContext, test } from "node:test";
import fc from "fast-check";
import { DEFAULT_MAX_QUEUED_BYTES, Forward } from "./forward.js";
import { Link } from "./link.js";
import {
  closesWithin,
  connect,
  readToEnd,
  roundTrip,
  sleep,
  startEchoServer,
  startServer,
  type TestServer,
  unusedPort,
  waitFor,
} from "./testing.js";

/**
 * The proxy's documented memory bound per connection direction: the queue bound, plus one read chunk
 * that may push it over, plus the target socket's write high-water mark and the chunk that crossed it.
 */
const BUFFER_BOUND = DEFAULT_MAX_QUEUED_BYTES + 64 * 1024 + 16 * 1024 + 64 * 1024;

async function forwardTo(
  t: TestContext,
  link: Link,
  targetPort: number,
  options: { maxQueuedBytes?: number } = {},
): Promise<Forward> {
  const forward = await Forward.listen({ link, targetHost: "127.0.0.1", targetPort, ...options });
  t.after(() => forward.close());
  return forward;
}

function sha256(data: Buffer): string {
  return createHash("sha256").update(data).digest("hex");
}

/** Writes numbered lines as separate writes, yielding between them so they travel as separate chunks. */
async function writeNumbered(socket: Socket, count: number): Promise<void> {
  for (let i = 0; i < count; i++) {
    socket.write(`${i}\n`);
    if (i % 4 === 3) await new Promise((resolve) => setImmediate(resolve));
  }
}

function assertNumbered(data: Buffer, count: number): void {
  const expected = Array.from({ length: count }, (_, i) => `${i}\n`).join("");
  assert.equal(data.toString(), expected);
}

test("bytes pass both ways unchanged, including a 5 MB payload", async (t) => {
  const echo = await startEchoServer(t);
  const link = new Link("us-east", "eu-west", { latencyMs: 5 });
  const forward = await forwardTo(t, link, echo.port);
  const client = await connect(t, forward.address().port);

  const payload = randomBytes(5 * 1024 * 1024);
  const reading = readToEnd(client);
  client.end(payload);
  const echoed = await reading;

  assert.equal(echoed.length, payload.length);
  assert.equal(sha256(echoed), sha256(payload));
  assert.equal(link.state().bytes.forward, payload.length);
  assert.equal(link.state().bytes.backward, payload.length);
  assert.ok(forward.stats().peakBufferedBytes <= BUFFER_BOUND, `peak ${forward.stats().peakBufferedBytes}`);
});

test("a slow reader makes the proxy push back instead of buffering without bound", async (t) => {
  const sink = await startServer(t, (socket) => socket.pause());
  const link = new Link("us-east", "eu-west", { latencyMs: 2 });
  const forward = await forwardTo(t, link, sink.port);
  const client = await connect(t, forward.address().port);
  const upstream = await sink.nextSocket();

  // Far more than the proxy may hold: with the reader stalled, the rest must back up in the client.
  const payload = randomBytes(24 * 1024 * 1024);
  client.end(payload);
  await waitFor(() => forward.stats().bufferedBytes >= DEFAULT_MAX_QUEUED_BYTES / 2, 5_000, "proxy to fill");
  await sleep(100);
  assert.ok(client.writableLength > 0, "the client's writes are held back by the proxy");
  assert.ok(forward.stats().bufferedBytes <= BUFFER_BOUND, `buffered ${forward.stats().bufferedBytes}`);

  // Now read slowly: pause between reads so the proxy keeps hitting 'drain' waits.
  const chunks: Buffer[] = [];
  let received = 0;
  const done = new Promise<void>((resolve) => upstream.once("end", () => resolve()));
  upstream.on("data", (chunk: Buffer) => {
    chunks.push(chunk);
    received += chunk.length;
    if (received % (2 * 1024 * 1024) < chunk.length) {
      upstream.pause();
      setTimeout(() => upstream.resume(), 5);
    }
  });
  upstream.resume();
  await done;

  assert.equal(sha256(Buffer.concat(chunks)), sha256(payload));
  const { peakBufferedBytes } = forward.stats();
  assert.ok(peakBufferedBytes <= BUFFER_BOUND, `peak ${peakBufferedBytes} above the bound ${BUFFER_BOUND}`);
});

test("a 50 ms link adds a latency to setup and two to a round trip; setLatency applies to new chunks", async (t) => {
  const echo = await startEchoServer(t);
  const link = new Link("us-east", "eu-west", { latencyMs: 50 });
  const forward = await forwardTo(t, link, echo.port);

  const connected = performance.now();
  const client = await connect(t, forward.address().port);
  await echo.nextSocket();
  const setupMs = performance.now() - connected;
  // Emulated latency is a minimum by construction (a chunk is held at least that long); only the
  // lower bound is the link's doing, anything above it is how busy the machine is.
  assert.equal(link.state().latencyMs, 50);
  assert.ok(setupMs >= 45, `setup took ${setupMs} ms, less than the link's latency`);

  const first = await roundTrip(client, "ping");
  assert.ok(first >= 95, `round trip ${first} ms, less than twice the link's latency`);

  link.setLatency(100);
  assert.equal(link.state().latencyMs, 100);
  const second = await roundTrip(client, "ping again");
  assert.ok(second >= 195, `round trip after setLatency(100): ${second} ms, less than twice the new latency`);

  link.setLatency(0);
  const third = await roundTrip(client, "fast");
  assert.ok(third <= 100, `round trip after setLatency(0): ${third} ms`);
});

test("jitter never reorders: numbered messages arrive in order both ways", async (t) => {
  const echo = await startEchoServer(t);
  const link = new Link("us-east", "eu-west", { latencyMs: 2, jitterMs: 40 });
  const forward = await forwardTo(t, link, echo.port);
  const client = await connect(t, forward.address().port);

  const count = 400;
  const reading = readToEnd(client);
  await writeNumbered(client, count);
  client.end();
  assertNumbered(await reading, count);
});

test("a partition drops bytes and connection setups; heal breaks the damaged connections only", async (t) => {
  const echo = await startEchoServer(t);
  const link = new Link("us-east", "eu-west", { latencyMs: 10 });
  const forward = await forwardTo(t, link, echo.port);

  const damaged = await connect(t, forward.address().port);
  const quiet = await connect(t, forward.address().port);
  assert.ok((await roundTrip(damaged, "before")) >= 0);
  assert.ok((await roundTrip(quiet, "quiet before")) >= 0);
  const acceptedBefore = echo.sockets.length;

  link.partition();
  assert.equal(link.state().partitioned, true);
  const received: Buffer[] = [];
  damaged.on("data", (chunk: Buffer) => received.push(chunk));
  damaged.write("into the void");
  const stranded = await connect(t, forward.address().port);
  stranded.write("hello?");
  await sleep(150);
  assert.equal(received.length, 0, "nothing comes back through a partition");
  assert.equal(echo.sockets.length, acceptedBefore, "no upstream connection is made during a partition");
  assert.equal(damaged.closed, false, "connections stay open but silent");
  assert.equal(stranded.closed, false);

  link.heal();
  assert.ok(await closesWithin(damaged, 2_000), "a connection that lost bytes is closed on heal");
  assert.ok(await closesWithin(stranded, 2_000), "a connection whose setup was lost is closed on heal");
  assert.equal(echo.sockets.length, acceptedBefore, "the stranded connection never reached upstream");
  assert.ok(
    (await roundTrip(quiet, "quiet after")) >= 0,
    "a connection silent during the partition survives",
  );

  const fresh = await connect(t, forward.address().port);
  assert.ok((await roundTrip(fresh, "after")) >= 20, "a new connection works, with latency");
});

test("bytes in flight when the partition starts are lost too", async (t) => {
  const echo = await startEchoServer(t);
  const link = new Link("us-east", "eu-west", { latencyMs: 100 });
  const forward = await forwardTo(t, link, echo.port);
  const client = await connect(t, forward.address().port);
  await roundTrip(client, "warm");

  const received: Buffer[] = [];
  client.on("data", (chunk: Buffer) => received.push(chunk));
  client.write("in flight");
  await sleep(20);
  link.partition();
  await sleep(250);
  assert.equal(received.length, 0);
  link.heal();
  assert.ok(await closesWithin(client, 2_000));
});

test("loss delays every lost chunk by the retransmission timeout, intact and in order", async (t) => {
  const echo = await startEchoServer(t);
  const link = new Link("us-east", "eu-west", { latencyMs: 10 });
  const forward = await forwardTo(t, link, echo.port);
  const client = await connect(t, forward.address().port);
  await roundTrip(client, "warm");

  link.setLoss(1);
  const lossy = await roundTrip(client, "ping");
  assert.ok(lossy >= 2 * (10 + 200) - 5 && lossy <= 3_000, `lossy round trip ${lossy} ms`);

  link.setLoss(1, { retransmitTimeoutMs: 100 });
  const shorter = await roundTrip(client, "pong");
  assert.ok(shorter >= 2 * (10 + 100) - 5 && shorter <= 2_000, `round trip with 100 ms RTO: ${shorter} ms`);

  const count = 100;
  const reading = readToEnd(client);
  await writeNumbered(client, count);
  client.end();
  assertNumbered(await reading, count);
});

test("half-close: each side's end() arrives after its data, and the other side can still answer", async (t) => {
  let serverGot = "";
  const server = await startServer(
    t,
    (socket) => {
      socket.on("data", (chunk: Buffer) => {
        serverGot += chunk.toString();
      });
      socket.on("end", () => {
        socket.end(`pong after ${serverGot}`);
      });
    },
    { allowHalfOpen: true },
  );
  const link = new Link("us-east", "eu-west", { latencyMs: 20 });
  const forward = await forwardTo(t, link, server.port);
  const client = await connect(t, forward.address().port);

  const reading = readToEnd(client);
  client.write("pi");
  client.end("ng");
  assert.equal((await reading).toString(), "pong after ping");
  assert.ok(await closesWithin(client, 2_000));
  await waitFor(() => forward.stats().connections === 0, 2_000, "the connection to finish");
  assert.equal(link.state().connections, 0);
});

test("an upstream that refuses the connection closes the client after the latency", async (t) => {
  const link = new Link("us-east", "eu-west", { latencyMs: 30 });
  const forward = await forwardTo(t, link, await unusedPort());
  const started = performance.now();
  const client = await connect(t, forward.address().port);
  assert.ok(await closesWithin(client, 3_000), "the client is closed");
  const elapsed = performance.now() - started;
  assert.ok(elapsed >= 55, `closed after ${elapsed} ms, before connect + reset latencies`);
  await waitFor(() => forward.stats().connections === 0, 2_000, "the connection to finish");
});

test("an upstream reset resets the client, and a client reset resets the upstream", async (t) => {
  const server = await startServer(t);
  const link = new Link("us-east", "eu-west", { latencyMs: 10 });
  const forward = await forwardTo(t, link, server.port);

  const first = await connect(t, forward.address().port);
  const firstErrors: Error[] = [];
  first.on("error", (err) => firstErrors.push(err));
  (await server.nextSocket()).resetAndDestroy();
  assert.ok(await closesWithin(first, 2_000));
  assert.equal((firstErrors[0] as NodeJS.ErrnoException | undefined)?.code, "ECONNRESET");

  const second = await connect(t, forward.address().port);
  const upstream = await server.nextSocket();
  second.resetAndDestroy();
  assert.ok(await closesWithin(upstream, 2_000));
  await waitFor(() => forward.stats().connections === 0, 2_000, "connections to finish");
});

test("close() releases the port and every socket, including stranded and busy ones", async (t) => {
  const echo = await startEchoServer(t);
  const link = new Link("us-east", "eu-west", { latencyMs: 50 });
  const forward = await Forward.listen({ link, targetHost: "127.0.0.1", targetPort: echo.port });
  t.after(() => forward.close());
  const { port } = forward.address();

  const busy = await connect(t, port);
  await roundTrip(busy, "hi");
  busy.write("pending when closed");
  link.partition();
  const stranded = await connect(t, port);
  assert.equal(link.state().connections, 2);

  await forward.close();
  assert.equal(forward.closed, true);
  assert.ok(await closesWithin(busy, 2_000));
  assert.ok(await closesWithin(stranded, 2_000));
  assert.equal(forward.stats().connections, 0);
  assert.equal(link.state().connections, 0);
  await waitFor(() => echo.sockets.every((s) => s.closed), 2_000, "upstream sockets to close");

  // The port is free again.
  const again = net.createServer();
  await new Promise<void>((resolve, reject) => {
    again.once("error", reject);
    again.listen({ host: "127.0.0.1", port }, () => resolve());
  });
  await new Promise<void>((resolve) => again.close(() => resolve()));
  await forward.close();
});

test("options are validated with messages that name the field", async () => {
  const link = new Link("a", "b", { latencyMs: 0 });
  await assert.rejects(Forward.listen({ link, targetHost: "127.0.0.1", targetPort: 0 }), /targetPort/);
  await assert.rejects(
    Forward.listen({ link, targetHost: "127.0.0.1", targetPort: 1, listenPort: 70_000 }),
    /listenPort/,
  );
  await assert.rejects(
    Forward.listen({ link, targetHost: "127.0.0.1", targetPort: 1, maxQueuedBytes: 0 }),
    /maxQueuedBytes/,
  );
});

test("property: any sequence of writes arrives concatenated identically", async (t) => {
  const sink: TestServer = await startServer(t, () => {}, { allowHalfOpen: true });
  const link = new Link("us-east", "eu-west", { latencyMs: 0 });
  const forward = await forwardTo(t, link, sink.port, { maxQueuedBytes: 32 * 1024 });

  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.uint8Array({ minLength: 1, maxLength: 40_000 }), { minLength: 1, maxLength: 12 }),
      fc.integer({ min: 0, max: 5 }),
      fc.integer({ min: 0, max: 5 }),
      fc.double({ min: 0, max: 0.3, noNaN: true }),
      async (writes, latencyMs, jitterMs, loss) => {
        link.setLatency(latencyMs);
        link.setJitter(jitterMs);
        link.setLoss(loss, { retransmitTimeoutMs: 10 });
        const client = await connect(t, forward.address().port);
        const upstream = await sink.nextSocket();
        const reading = readToEnd(upstream);
        for (const [i, write] of writes.entries()) {
          client.write(write);
          if (i % 3 === 2) await sleep(1);
        }
        client.end();
        const received = await reading;
        assert.ok(received.equals(Buffer.concat(writes)), "received bytes equal the concatenated writes");
        client.destroy();
        upstream.destroy();
      },
    ),
    { numRuns: 20 },
  );
});
