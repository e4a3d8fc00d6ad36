/**
 * Runs one of the Node proxies of the router benchmark in a process of its own, so the benchmark
 * can pin it to one core: `node dist/bench/proxy-runner.js <kind> <origin-url>`, where kind is
 *
 * - `ringfence`: ringfence's router, `startStandaloneRouter` from src/router/standalone.ts;
 * - `stand-in`: the stand-in with the same signature (stand-in-router.ts), NOT ringfence;
 * - `http-proxy`: node-http-proxy with a keep-alive agent;
 * - `fastify`: fastify with @fastify/http-proxy, logger off.
 *
 * It listens on a free loopback port, prints `READY <url> <pid>` and runs until SIGTERM or until
 * its stdin closes (the benchmark has gone).
 */
import { Agent, createServer } from "node:http";
import proxy from "@fastify/http-proxy";
import Fastify from "fastify";
import httpProxy from "http-proxy";

interface Running {
  url: string;
  pid?: number;
  close(): Promise<void>;
}

type StartRouter = (options: {
  listen: { host: string; port: number };
  origins: readonly { host: string; port: number }[];
}) => Promise<Running>;

const HOST = "127.0.0.1";

async function startRouter(modulePath: string, origin: URL): Promise<Running> {
  // A specifier in a variable: the router module may not be built yet when this file compiles.
  const start = ((await import(modulePath)) as { startStandaloneRouter: StartRouter }).startStandaloneRouter;
  return await start({
    listen: { host: HOST, port: 0 },
    origins: [{ host: origin.hostname, port: Number(origin.port) }],
  });
}

async function startHttpProxy(origin: URL): Promise<Running> {
  const agent = new Agent({ keepAlive: true, maxSockets: 256 });
  const forward = httpProxy.createProxyServer({ target: origin.origin, agent });
  const server = createServer((req, res) => {
    forward.web(req, res, {}, () => {
      if (!res.headersSent) res.writeHead(502);
      res.end();
    });
  });
  server.keepAliveTimeout = 120_000;
  await new Promise<void>((resolve) => server.listen(0, HOST, () => resolve()));
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  return {
    url: `http://${HOST}:${port}`,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      agent.destroy();
    },
  };
}

async function startFastify(origin: URL): Promise<Running> {
  const app = Fastify({ logger: false, keepAliveTimeout: 120_000 });
  await app.register(proxy, { upstream: origin.origin });
  const url = await app.listen({ host: HOST, port: 0 });
  return { url, close: () => app.close() };
}

async function main(): Promise<void> {
  const [kind, originArg] = process.argv.slice(2);
  if (!kind || !originArg) throw new Error("usage: proxy-runner.js <kind> <origin-url>");
  const origin = new URL(originArg);
  let running: Running;
  switch (kind) {
    case "ringfence":
      running = await startRouter("../router/standalone.js", origin);
      break;
    case "stand-in":
      running = await startRouter("./stand-in-router.js", origin);
      break;
    case "http-proxy":
      running = await startHttpProxy(origin);
      break;
    case "fastify":
      running = await startFastify(origin);
      break;
    default:
      throw new Error(`unknown proxy kind '${kind}': use ringfence, stand-in, http-proxy or fastify`);
  }
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    const force = setTimeout(() => process.exit(0), 2_000);
    force.unref();
    running.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once("SIGTERM", stop);
  process.stdin.on("end", stop);
  process.stdin.on("error", stop);
  process.stdin.resume();
  console.log(`READY ${running.url} ${running.pid ?? process.pid}`);
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? (error.stack ?? error.message) : String(error));
  process.exit(1);
});
