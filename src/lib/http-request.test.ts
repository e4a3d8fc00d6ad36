import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, test } from "node:test";
import { httpRequest } from "./http-request.js";

let server: Server;
let base = "";
const seen: { method: string; url: string; headers: Record<string, unknown>; body: string }[] = [];

before(async () => {
  server = createServer((req, res) => {
    let body = "";
    req.setEncoding("utf8");
    req.on("data", (c: string) => {
      body += c;
    });
    req.on("end", () => {
      if (req.url === "/hang") return; // never answers, and is not counted
      seen.push({ method: req.method ?? "", url: req.url ?? "", headers: req.headers, body });
      if (req.url === "/json") {
        res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ echo: body }));
      } else if (req.url === "/missing") {
        res.writeHead(404).end("no such thing");
      } else if (req.url === "/stream") {
        res.writeHead(200, { "content-type": "text/event-stream" });
        res.write("event: a\ndata: 1\n\n");
        setTimeout(() => res.end("event: b\ndata: 2\n\n"), 20);
      } else {
        res.writeHead(204).end();
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

test("a POST sends its body, headers and length; the answer reads as JSON", async () => {
  const res = await httpRequest(`${base}/json`, {
    method: "POST",
    headers: { authorization: "Bearer x", "content-type": "application/json" },
    body: '{"é":1}',
  });
  assert.equal(res.status, 200);
  assert.equal(res.ok, true);
  assert.deepEqual(await res.json(), { echo: '{"é":1}' });
  const last = seen.at(-1);
  assert.equal(last?.method, "POST");
  assert.equal(last?.headers.authorization, "Bearer x");
  assert.equal(last?.headers["content-length"], String(Buffer.byteLength('{"é":1}')));
});

test("a non-2xx answer is not ok, and its body still reads", async () => {
  const res = await httpRequest(`${base}/missing`);
  assert.equal(res.status, 404);
  assert.equal(res.ok, false);
  assert.equal(await res.text(), "no such thing");
});

test("a stream arrives chunk by chunk", async () => {
  const res = await httpRequest(`${base}/stream`);
  let text = "";
  let chunks = 0;
  for await (const chunk of res.body) {
    text += String(chunk);
    chunks++;
  }
  assert.equal(text, "event: a\ndata: 1\n\nevent: b\ndata: 2\n\n");
  assert.ok(chunks >= 2, `${chunks} chunks`);
});

test("an abort signal ends a request that gets no answer, and one already aborted never starts", async () => {
  const controller = new AbortController();
  const pending = httpRequest(`${base}/hang`, { signal: controller.signal });
  controller.abort(new Error("gave up"));
  await assert.rejects(pending, /gave up/);
  const before = seen.length;
  await assert.rejects(
    httpRequest(`${base}/json`, { signal: AbortSignal.abort(new Error("already")) }),
    /already/,
  );
  assert.equal(seen.length, before);
});

test("a refused connection rejects", async () => {
  await assert.rejects(httpRequest("http://127.0.0.1:1/"), /ECONNREFUSED/);
});
