import assert from "node:assert/strict";
import { connect, createServer, type Server } from "node:net";
import { after, test } from "node:test";
import { freePort } from "../lib/ports.js";
import { WriterEndpoint } from "./writer.js";

const servers: Server[] = [];
after(() => {
  for (const s of servers) s.close();
});

/** An echo server that prefixes replies with its name. */
async function echo(name: string): Promise<{ host: string; port: number }> {
  const server = createServer((s) => s.on("data", (d) => s.write(`${name}:${d}`)));
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const address = server.address();
  return { host: "127.0.0.1", port: typeof address === "object" && address ? address.port : 0 };
}

/** Sends `text` and resolves with the reply, or with "closed" when the connection is closed. */
function ask(port: number, text: string): Promise<string> {
  return new Promise((resolve) => {
    const s = connect(port, "127.0.0.1", () => s.write(text));
    s.once("data", (d) => {
      resolve(d.toString());
      s.destroy();
    });
    s.once("close", () => resolve("closed"));
    s.once("error", () => {});
  });
}

test("refuses while fenced, forwards to the primary once routed, and follows a repoint", async () => {
  const a = await echo("a");
  const b = await echo("b");
  const writer = new WriterEndpoint({ host: "127.0.0.1", port: await freePort() });
  await writer.start();
  try {
    const port = writer.listen.port;
    assert.equal(await ask(port, "x"), "closed", "fenced at start");
    writer.route(a, false);
    assert.equal(await ask(port, "x"), "a:x");
    writer.route(b, false);
    assert.equal(await ask(port, "y"), "b:y");
    writer.route(b, true);
    assert.equal(await ask(port, "z"), "closed");
    assert.ok(writer.stats().refused >= 2);
  } finally {
    await writer.close();
  }
});

test("fencing closes connections that are already open", async () => {
  const a = await echo("a");
  const writer = new WriterEndpoint({ host: "127.0.0.1", port: await freePort() });
  await writer.start();
  try {
    writer.route(a, false);
    const s = connect(writer.listen.port, "127.0.0.1");
    await new Promise<void>((r) => s.once("connect", () => r()));
    s.write("hello");
    await new Promise<void>((r) => s.once("data", () => r()));
    const closed = new Promise<void>((r) => s.once("close", () => r()));
    s.on("error", () => {});
    assert.equal(writer.stats().open, 1);
    writer.route(a, true);
    await closed;
    assert.equal(writer.stats().open, 0);
  } finally {
    await writer.close();
  }
});
