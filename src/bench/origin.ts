/**
 * The origin every proxy of the router benchmark forwards to, run as its own process:
 * `node dist/bench/origin.js` answers `GET /users/x` with a fixed JSON body of about 100 bytes on
 * keep-alive connections, and prints `ORIGIN <url>` once it listens on a free loopback port. It
 * exits on SIGTERM or when its stdin closes (the benchmark has gone).
 */
import { createServer } from "node:http";

/** The body of `GET /users/x` (98 bytes). */
const USER_BODY = Buffer.from(
  JSON.stringify({
    id: "x",
    name: "Bench User",
    email: "bench.user@example.com",
    region: "eu-west",
    cell: "cell-1",
  }),
);

function main(): void {
  const headers = {
    "content-type": "application/json",
    "content-length": String(USER_BODY.length),
  };
  const server = createServer((req, res) => {
    if (req.method === "GET" && req.url === "/users/x") {
      res.writeHead(200, headers);
      res.end(USER_BODY);
      return;
    }
    res.writeHead(404, { "content-length": "0" });
    res.end();
  });
  // Proxies pool their connections to the origin: do not close them between runs.
  server.keepAliveTimeout = 120_000;
  server.headersTimeout = 125_000;
  server.listen(0, "127.0.0.1", () => {
    const address = server.address();
    const port = typeof address === "object" && address ? address.port : 0;
    console.log(`ORIGIN http://127.0.0.1:${port}`);
  });
  const stop = () => process.exit(0);
  process.once("SIGTERM", stop);
  process.stdin.on("end", stop);
  process.stdin.on("error", stop);
  process.stdin.resume();
}

main();
