/**
 * Free TCP ports on loopback, for tests and for a local world's address plan.
 */
import { createServer } from "node:net";

/** A port that was free on `host` a moment ago (bind to 0, read it, close). */
export async function freePort(host = "127.0.0.1"): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once("error", reject);
    server.listen(0, host, () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}
