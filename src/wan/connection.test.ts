import assert from "node:assert/strict";
import { test } from "node:test";
import { resetSocket } from "./connection.js";
import { closesWithin, connect, readToEnd, startServer } from "./testing.js";

test("a reset right after end() still closes the socket: the FIN goes out, no handle is left behind", async (t) => {
  const server = await startServer(t);
  const client = await connect(t, server.port);
  const peer = await server.nextSocket();
  const received = readToEnd(peer);
  client.end("last words");
  // The shutdown is under way now; a TCP reset (uv_tcp_close_reset) would fail with EINVAL and
  // leave the handle open forever, so that node's exit cleanup spins on it.
  resetSocket(client);
  const errors: Error[] = [];
  client.on("error", (err) => errors.push(err));
  assert.equal(await closesWithin(client, 5_000), true, "the socket closed");
  assert.deepEqual(errors, []);
  assert.equal((await received).toString(), "last words");
});

test("a reset of a socket that sent no FIN reaches the peer as ECONNRESET", async (t) => {
  const server = await startServer(t);
  const client = await connect(t, server.port);
  const peer = await server.nextSocket();
  const peerError = new Promise<string | undefined>((resolve) => {
    peer.on("error", (err: NodeJS.ErrnoException) => resolve(err.code));
    peer.on("close", () => resolve(undefined));
  });
  resetSocket(client);
  assert.equal(await closesWithin(client, 5_000), true, "the socket closed");
  assert.equal(await peerError, "ECONNRESET");
});

test("a reset after the FIN was sent is still a reset", async (t) => {
  const server = await startServer(t);
  const client = await connect(t, server.port);
  const peer = await server.nextSocket();
  const peerError = new Promise<string | undefined>((resolve) => {
    peer.on("error", (err: NodeJS.ErrnoException) => resolve(err.code));
    peer.on("close", () => resolve(undefined));
  });
  peer.resume();
  client.end();
  await new Promise((resolve) => client.once("finish", resolve));
  resetSocket(client);
  assert.equal(await closesWithin(client, 5_000), true, "the socket closed");
  // A write after a plain close would succeed once; failing at once, it met the RST (ECONNRESET,
  // or EPIPE when the kernel had already taken the RST in).
  peer.write("reply");
  assert.match((await peerError) ?? "no error", /^(ECONNRESET|EPIPE)$/);
});
