/**
 * A controllable origin for router tests, run as its own process so tests can SIGKILL or SIGSTOP
 * it: `node dist/router/origin-for-tests.js HOST PORT NAME`. It answers every request with JSON naming
 * itself; `POST /_origin` with `{ "status": 503, "delayMs": 200 }` changes how it answers;
 * `GET /_origin` returns its counters (requests, concurrent peak, retries seen).
 */
import { createServer } from "node:http";

const [host = "127.0.0.1", portText = "0", name = "origin"] = process.argv.slice(2);
let status = 200;
let delayMs = 0;
let requests = 0;
let active = 0;
let peak = 0;
let retriesActive = 0;
let retriesPeak = 0;

const server = createServer((req, res) => {
  if (req.url === "/_origin") {
    if (req.method === "POST") {
      let body = "";
      req.on("data", (c: Buffer) => {
        body += c.toString();
      });
      req.on("end", () => {
        const change = JSON.parse(body || "{}") as { status?: number; delayMs?: number; reset?: boolean };
        if (change.status !== undefined) status = change.status;
        if (change.delayMs !== undefined) delayMs = change.delayMs;
        if (change.reset) requests = peak = retriesPeak = 0;
        res.end("{}");
      });
      return;
    }
    res.setHeader("content-type", "application/json");
    res.end(JSON.stringify({ name, requests, peak, retriesPeak }));
    return;
  }
  requests++;
  active++;
  peak = Math.max(peak, active);
  const retry = Number(req.headers["x-ringfence-attempt"] ?? 0) > 0;
  if (retry) {
    retriesActive++;
    retriesPeak = Math.max(retriesPeak, retriesActive);
  }
  req.resume();
  req.on("end", () => {
    setTimeout(() => {
      active--;
      if (retry) retriesActive--;
      const body = JSON.stringify({
        served: name,
        method: req.method,
        url: req.url,
        tenant: req.headers["x-tenant"] ?? null,
      });
      res.writeHead(status, {
        "content-type": "application/json",
        "content-length": Buffer.byteLength(body),
        ...(status === 503 ? { "retry-after": "0" } : {}),
      });
      res.end(body);
    }, delayMs);
  });
});
server.keepAliveTimeout = 60_000;
server.listen(Number(portText), host, () => {
  const address = server.address();
  process.stdout.write(
    `${JSON.stringify({ listening: typeof address === "object" && address ? address.port : 0 })}\n`,
  );
});
process.on("SIGTERM", () => server.close(() => process.exit(0)));
