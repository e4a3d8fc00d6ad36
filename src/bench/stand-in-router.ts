/**
 * STAND-IN, not ringfence's router: a plain node:http reverse proxy with the signature of
 * `startStandaloneRouter` in src/router/standalone.ts, so the router benchmark's harness can be
 * run before that module exists (`npm run bench:router -- --stand-in` forces it). It requires the
 * `X-Tenant` header and spreads requests over the origins in turn; it has none of the router's
 * features (tenant routing, retry budget, outlier ejection, telemetry). Figures measured with it
 * say nothing about ringfence.
 */
import { Agent, createServer, request } from "node:http";

export async function startStandaloneRouter(options: {
  listen: { host: string; port: number };
  origins: readonly { host: string; port: number }[];
}): Promise<{ url: string; pid?: number; close(): Promise<void> }> {
  const origins = [...options.origins];
  if (origins.length === 0) throw new Error("stand-in router: options.origins is empty; give at least one");
  const agent = new Agent({ keepAlive: true, maxSockets: 256 });
  let next = 0;
  const server = createServer((req, res) => {
    if (!req.headers["x-tenant"]) {
      res.writeHead(400, { "content-type": "text/plain" });
      res.end("X-Tenant header missing\n");
      return;
    }
    const origin = origins[next++ % origins.length] as { host: string; port: number };
    const upstream = request(
      {
        agent,
        host: origin.host,
        port: origin.port,
        method: req.method,
        path: req.url,
        headers: req.headers,
      },
      (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      },
    );
    upstream.on("error", () => {
      if (!res.headersSent) res.writeHead(502, { "content-type": "text/plain" });
      res.end("origin unreachable\n");
    });
    req.pipe(upstream);
  });
  server.keepAliveTimeout = 120_000;
  server.headersTimeout = 125_000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.listen.port, options.listen.host, () => resolve());
  });
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : options.listen.port;
  return {
    url: `http://${options.listen.host}:${port}`,
    pid: process.pid,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      agent.destroy();
    },
  };
}
