/**
 * A small HTTP/1.1 client on node:http for the world's own control traffic: agents' heartbeats,
 * desired-state polls and health probes, routers' table feed. It does what those need (a method,
 * headers, a text body, an abort signal, the answer as text, JSON or a stream) and no more.
 *
 * Why not `fetch`: the first `fetch` loads undici into the process, ~5 MiB of heap in each of the
 * nine agents and routers of a default world, for a handful of small requests a second. The
 * router's hot path has its own client (router/upstream/); this one is for everything around it.
 */
import { Agent, type IncomingMessage, request } from "node:http";

/** Connections to the controller are kept open between requests, as fetch would. */
const keepAlive = new Agent({ keepAlive: true, maxSockets: 16 });

export interface HttpRequestOptions {
  /** GET by default. */
  readonly method?: string;
  readonly headers?: Readonly<Record<string, string>>;
  /** Sent with its content-length. */
  readonly body?: string;
  /** Aborts the request, or the reading of its answer, with the signal's reason. */
  readonly signal?: AbortSignal;
}

/** An answer whose head has arrived; its body is read once, by one of the methods. */
export interface HttpAnswer {
  readonly status: number;
  /** True for a 2xx status. */
  readonly ok: boolean;
  /** The answer's headers, names in lower case. */
  readonly headers: IncomingMessage["headers"];
  /** The body as it arrives (for event streams). */
  readonly body: IncomingMessage;
  text(): Promise<string>;
  json<T>(): Promise<T>;
  /** Reads and drops the body, so that the connection can be used again. */
  drain(): Promise<void>;
}

/** Sends one request to an `http://` URL; resolves once the answer's head has arrived. */
export function httpRequest(url: string, options: HttpRequestOptions = {}): Promise<HttpAnswer> {
  const { method = "GET", headers = {}, body, signal } = options;
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const req = request(url, {
      method,
      agent: keepAlive,
      headers: body === undefined ? headers : { ...headers, "content-length": Buffer.byteLength(body) },
    });
    const onAbort = () => req.destroy(signal?.reason instanceof Error ? signal.reason : new Error("aborted"));
    signal?.addEventListener("abort", onAbort, { once: true });
    const done = () => signal?.removeEventListener("abort", onAbort);
    req.once("error", (err) => {
      done();
      reject(err);
    });
    req.once("response", (res) => {
      res.once("end", done);
      res.once("close", done);
      const status = res.statusCode ?? 0;
      const text = async () => {
        const chunks: Buffer[] = [];
        for await (const chunk of res) chunks.push(chunk as Buffer);
        return Buffer.concat(chunks).toString("utf8");
      };
      resolve({
        status,
        ok: status >= 200 && status < 300,
        headers: res.headers,
        body: res,
        text,
        json: async <T>() => JSON.parse(await text()) as T,
        drain: async () => {
          for await (const _ of res) {
            // dropped
          }
        },
      });
    });
    req.end(body);
  });
}
