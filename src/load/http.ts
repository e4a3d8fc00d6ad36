/**
 * The HTTP client of `ringfence load` and `ringfence audit`: node:http with keep-alive, a whole-request
 * deadline, and failures classified so that a write whose outcome is unknown (it was sent, then timed
 * out or lost its connection) is told apart from one that never left.
 */
import { Agent, type IncomingHttpHeaders, request } from "node:http";

/** A router to send requests to. */
export interface Target {
  /** The router's region. */
  readonly region: string;
  readonly host: string;
  readonly port: number;
}

export type HttpResult =
  | {
      readonly kind: "response";
      readonly status: number;
      readonly headers: IncomingHttpHeaders;
      readonly body: string;
    }
  | {
      readonly kind: "failure";
      /** `timeout`: no whole answer within the deadline; `connection`: refused, reset, closed. */
      readonly errorClass: "timeout" | "connection";
      /** Whether the whole request had been written: if so the server may have acted on it. */
      readonly sent: boolean;
      readonly message: string;
    };

export interface RequestSpec {
  readonly target: Target;
  readonly method: "GET" | "PUT";
  readonly path: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly body?: string;
  /** Deadline for the whole exchange, in ms. */
  readonly timeoutMs: number;
}

/** Answers larger than this are cut off (and the exchange counted as a connection failure). */
const MAX_BODY_BYTES = 1 << 20;

/** A keep-alive client; `close()` it when done. */
export class HttpClient {
  readonly #agent: Agent;

  /** `maxSocketsPerRouter`: connections per router (default 512); more requests queue in the client. */
  constructor(options: { maxSocketsPerRouter?: number } = {}) {
    this.#agent = new Agent({
      keepAlive: true,
      maxSockets: options.maxSocketsPerRouter ?? 512,
      maxFreeSockets: 256,
    });
  }

  send(spec: RequestSpec): Promise<HttpResult> {
    return new Promise<HttpResult>((resolve) => {
      let settled = false;
      let sent = false;
      let timedOut = false;
      const settle = (result: HttpResult) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve(result);
      };
      const fail = (err: Error) =>
        settle({
          kind: "failure",
          errorClass: timedOut ? "timeout" : "connection",
          sent,
          message: timedOut ? `no answer within ${spec.timeoutMs} ms` : err.message,
        });
      const headers: Record<string, string | number> = { ...spec.headers };
      if (spec.body !== undefined) {
        headers["content-type"] = "application/json";
        headers["content-length"] = Buffer.byteLength(spec.body);
      }
      const req = request({
        agent: this.#agent,
        host: spec.target.host,
        port: spec.target.port,
        method: spec.method,
        path: spec.path,
        headers,
      });
      const timer = setTimeout(() => {
        timedOut = true;
        req.destroy(new Error("timeout"));
      }, spec.timeoutMs);
      req.on("finish", () => {
        sent = true;
      });
      req.on("error", fail);
      req.on("response", (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on("data", (chunk: Buffer) => {
          size += chunk.length;
          if (size > MAX_BODY_BYTES) req.destroy(new Error(`answer larger than ${MAX_BODY_BYTES} bytes`));
          else chunks.push(chunk);
        });
        res.on("error", fail);
        res.on("close", () => {
          if (!res.complete) fail(new Error("the answer was cut off"));
        });
        res.on("end", () =>
          settle({
            kind: "response",
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString("utf8"),
          }),
        );
      });
      req.end(spec.body);
    });
  }

  /** Closes every connection. */
  close(): void {
    this.#agent.destroy();
  }
}

/** A header as one string (the first copy), or undefined. */
export function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** The `error.code` of a JSON error answer, when it has one. */
export function errorCodeOf(body: string): string | undefined {
  try {
    const code = (JSON.parse(body) as { error?: { code?: unknown } }).error?.code;
    return typeof code === "string" ? code : undefined;
  } catch {
    return undefined;
  }
}
