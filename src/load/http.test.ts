import assert from "node:assert/strict";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { test } from "node:test";
import { freePort } from "../lib/ports.js";
import { HttpClient } from "./http.js";

test("failures are classified, and whether the request had been sent is known", async () => {
  const server = createServer((req, res) => {
    if (req.url === "/slow") return; // never answers
    if (req.url === "/cut") {
      res.writeHead(200, { "content-length": "100" });
      res.write("partial");
      setTimeout(() => res.socket?.destroy(), 10);
      return;
    }
    res.writeHead(201, { "x-ringfence-cell": "cell-1" }).end("done");
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const target = { region: "r", host: "127.0.0.1", port: (server.address() as AddressInfo).port };
  const client = new HttpClient();
  const send = (path: string, port = target.port) =>
    client.send({
      target: { ...target, port },
      method: "PUT",
      path,
      headers: {},
      body: "{}",
      timeoutMs: 200,
    });
  try {
    const ok = await send("/ok");
    assert.equal(ok.kind, "response");
    assert.ok(ok.kind === "response" && ok.status === 201 && ok.body === "done");
    assert.equal(ok.kind === "response" && ok.headers["x-ringfence-cell"], "cell-1");
    const slow = await send("/slow");
    assert.deepEqual(slow.kind === "failure" && [slow.errorClass, slow.sent], ["timeout", true]);
    const cut = await send("/cut");
    assert.deepEqual(cut.kind === "failure" && [cut.errorClass, cut.sent], ["connection", true]);
    const refused = await send("/ok", await freePort());
    assert.deepEqual(refused.kind === "failure" && [refused.errorClass, refused.sent], ["connection", false]);
  } finally {
    client.close();
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  }
});
