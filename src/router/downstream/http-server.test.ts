/**
 * The router's HTTP/1.1 server against real loopback sockets: raw clients send exact bytes and read
 * exact bytes back (responses are parsed strictly, chunked bodies decoded), Node's own clients where
 * a normal client is enough. Keep-alive and close, pipelining, response framing, request bodies,
 * Expect, the refusals the server gives by itself, timeouts, clients that go away or half-close,
 * backpressure, shutdown, and a property test over random pipelined requests in random pieces.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { Agent, request as httpRequest, type IncomingHttpHeaders } from "node:http";
import { connect, type Socket } from "node:net";
import { after, describe, test } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import fc from "fast-check";
import { type Handler, HttpServer, type HttpServerOptions } from "./http-server.js";

const EMPTY = Buffer.alloc(0);

// ---------------------------------------------------------------------------------------------------
// Servers and raw clients, all closed at the end.

const servers = new Set<HttpServer>();
const wires = new Set<Wire>();

after(async () => {
  for (const wire of wires) wire.socket.destroy();
  for (const server of servers) await server.close();
});

async function serve(
  handler: Handler,
  options: HttpServerOptions = {},
): Promise<{ server: HttpServer; port: number }> {
  const server = new HttpServer(options, handler);
  servers.add(server);
  const { port } = await server.listen(0, "127.0.0.1");
  return { server, port };
}

async function stop(server: HttpServer): Promise<void> {
  await server.close();
  servers.delete(server);
}

/** A parsed response. */
interface Response {
  readonly status: number;
  /** Lower-case names in order, as sent (to spot duplicates). */
  readonly names: readonly string[];
  readonly headers: ReadonlyMap<string, string>;
  readonly body: Buffer;
  readonly framing: "length" | "chunked" | "close" | "none";
}

/** A strict chunked body decoder: undefined while incomplete; throws on anything malformed. */
function decodeChunked(buf: Buffer, from: number): { body: Buffer; end: number } | undefined {
  const parts: Buffer[] = [];
  let at = from;
  for (;;) {
    const lineEnd = buf.indexOf("\r\n", at);
    if (lineEnd < 0) {
      if (buf.length - at > 16) throw new Error("a chunk size line over 16 bytes");
      return undefined;
    }
    const line = buf.toString("latin1", at, lineEnd);
    if (!/^[0-9a-f]{1,8}$/.test(line)) throw new Error(`bad chunk size line ${JSON.stringify(line)}`);
    const size = Number.parseInt(line, 16);
    if (size === 0) {
      // The server sends no trailers: the last chunk is followed by the empty line at once.
      if (buf.length < lineEnd + 4) return undefined;
      if (buf.toString("latin1", lineEnd + 2, lineEnd + 4) !== "\r\n")
        throw new Error("bad end of chunked body");
      return { body: Buffer.concat(parts), end: lineEnd + 4 };
    }
    const dataEnd = lineEnd + 2 + size;
    if (buf.length < dataEnd + 2) return undefined;
    if (buf[dataEnd] !== 13 || buf[dataEnd + 1] !== 10) throw new Error("chunk data not followed by CRLF");
    parts.push(buf.subarray(lineEnd + 2, dataEnd));
    at = dataEnd + 2;
  }
}

/**
 * The complete responses at the start of `buf`, strictly parsed (anything malformed throws, bytes
 * that do not start a response included). `bodiless(i)` tells whether the i-th final response answers
 * a HEAD request; `eof` whether the server closed (a body without length runs to it).
 */
function parseResponses(
  buf: Buffer,
  eof: boolean,
  bodiless: (index: number) => boolean = () => false,
): { finals: Response[]; interim: Response[]; rest: number } {
  const finals: Response[] = [];
  const interim: Response[] = [];
  let at = 0;
  while (at < buf.length) {
    const headEnd = buf.indexOf("\r\n\r\n", at);
    if (headEnd < 0) {
      if (
        !buf
          .toString("latin1", at, Math.min(buf.length, at + 9))
          .startsWith("HTTP/1.1 ".slice(0, buf.length - at))
      )
        throw new Error(
          `bytes that do not start a response: ${JSON.stringify(buf.toString("latin1", at, at + 80))}`,
        );
      break;
    }
    const lines = buf.toString("latin1", at, headEnd).split("\r\n");
    const m = /^HTTP\/1\.1 (\d{3}) [ -~]*$/.exec(lines[0] ?? "");
    if (!m) throw new Error(`bad status line ${JSON.stringify(lines[0]?.slice(0, 80))}`);
    const status = Number(m[1]);
    const names: string[] = [];
    const headers = new Map<string, string>();
    for (const line of lines.slice(1)) {
      const h = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+): ([ -~]*)$/.exec(line);
      if (!h) throw new Error(`bad header line ${JSON.stringify(line)}`);
      const name = (h[1] as string).toLowerCase();
      names.push(name);
      const before = headers.get(name);
      headers.set(name, before === undefined ? (h[2] as string) : `${before}, ${h[2]}`);
    }
    let pos = headEnd + 4;
    if (status < 200) {
      interim.push({ status, names, headers, body: EMPTY, framing: "none" });
      at = pos;
      continue;
    }
    const te = headers.get("transfer-encoding");
    const cl = headers.get("content-length");
    if (te !== undefined && cl !== undefined) throw new Error("both transfer-encoding and content-length");
    let body: Buffer;
    let framing: Response["framing"];
    if (bodiless(finals.length) || status === 204 || status === 304) {
      body = EMPTY;
      framing = "none";
    } else if (te !== undefined) {
      if (te !== "chunked") throw new Error(`transfer-encoding ${te}`);
      const decoded = decodeChunked(buf, pos);
      if (decoded === undefined) break;
      body = decoded.body;
      pos = decoded.end;
      framing = "chunked";
    } else if (cl !== undefined) {
      if (!/^\d+$/.test(cl)) throw new Error(`content-length ${cl}`);
      const n = Number(cl);
      if (buf.length < pos + n) break;
      body = buf.subarray(pos, pos + n);
      pos += n;
      framing = "length";
    } else {
      if (!eof) break;
      body = buf.subarray(pos);
      pos = buf.length;
      framing = "close";
    }
    finals.push({ status, names, headers, body, framing });
    at = pos;
  }
  return { finals, interim, rest: at };
}

/** A raw client connection that keeps every byte it receives. */
class Wire {
  readonly socket: Socket;
  #chunks: Buffer[] = [];
  #bytes: Buffer | undefined;
  /** The server ended its side (FIN) or the connection closed. */
  ended = false;
  closed = false;
  error: Error | undefined;
  #waiters = new Set<() => boolean>();

  constructor(socket: Socket) {
    this.socket = socket;
    wires.add(this);
    socket.on("data", (chunk: Buffer) => {
      this.#chunks.push(chunk);
      this.#bytes = undefined;
      this.#notify();
    });
    socket.on("end", () => {
      this.ended = true;
      this.#notify();
    });
    socket.on("error", (err) => {
      this.error = err;
    });
    socket.on("close", () => {
      this.ended = true;
      this.closed = true;
      wires.delete(this);
      this.#notify();
    });
  }

  static open(port: number): Promise<Wire> {
    return new Promise((resolve, reject) => {
      const socket = connect({ port, host: "127.0.0.1", noDelay: true });
      socket.once("error", reject);
      socket.once("connect", () => {
        socket.off("error", reject);
        resolve(new Wire(socket));
      });
    });
  }

  get bytes(): Buffer {
    this.#bytes ??= Buffer.concat(this.#chunks);
    return this.#bytes;
  }

  get text(): string {
    return this.bytes.toString("latin1");
  }

  write(data: string | Buffer): Promise<void> {
    return new Promise((resolve, reject) =>
      this.socket.write(data, (err) => (err ? reject(err) : resolve())),
    );
  }

  /** Resolves with what `check` returns once it is not undefined (checked on every event). */
  until<T>(check: () => T | undefined, what: string, timeoutMs = 3_000): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters.delete(attempt);
        reject(
          new Error(`timed out waiting for ${what}; received ${JSON.stringify(this.text.slice(0, 400))}`),
        );
      }, timeoutMs);
      const attempt = (): boolean => {
        let value: T | undefined;
        try {
          value = check();
        } catch (err) {
          clearTimeout(timer);
          reject(err);
          return true;
        }
        if (value !== undefined) {
          clearTimeout(timer);
          resolve(value);
          return true;
        }
        if (this.closed) {
          clearTimeout(timer);
          reject(new Error(`closed before ${what}; received ${JSON.stringify(this.text.slice(0, 400))}`));
          return true;
        }
        return false;
      };
      if (!attempt()) this.#waiters.add(attempt);
    });
  }

  /** The first `n` final responses; `heads[i]` true when the i-th answers a HEAD request. */
  responses(n: number, heads: readonly boolean[] = [], timeoutMs?: number): Promise<Response[]> {
    return this.until(
      () => {
        const { finals } = parseResponses(this.bytes, this.ended, (i) => heads[i] === true);
        return finals.length >= n ? finals.slice(0, n) : undefined;
      },
      `${n} response(s)`,
      timeoutMs,
    );
  }

  /** Waits for the connection to close (both ways). */
  async untilClosed(timeoutMs = 3_000): Promise<void> {
    if (!this.ended) await this.until(() => (this.ended ? true : undefined), "the server's end", timeoutMs);
    // Our own end (default allowHalfOpen: false) follows the server's at once.
    await new Promise<void>((resolve, reject) => {
      if (this.closed) return resolve();
      const timer = setTimeout(() => reject(new Error("the socket did not close")), timeoutMs);
      this.socket.once("close", () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /** Everything received, parsed, once the connection closed. */
  async all(heads: readonly boolean[] = []): Promise<{ finals: Response[]; interim: Response[] }> {
    await this.untilClosed();
    const parsed = parseResponses(this.bytes, true, (i) => heads[i] === true);
    assert.equal(parsed.rest, this.bytes.length, "bytes after the last complete response");
    return parsed;
  }

  #notify(): void {
    for (const attempt of [...this.#waiters]) if (attempt()) this.#waiters.delete(attempt);
  }
}

// ---------------------------------------------------------------------------------------------------
// Handlers and requests.

function headerOf(headers: readonly string[], name: string): string | undefined {
  for (let i = 0; i < headers.length; i += 2)
    if ((headers[i] as string).toLowerCase() === name) return headers[i + 1] as string;
  return undefined;
}

interface Echo {
  readonly method: string;
  readonly target: string;
  readonly headers: string[];
  /** The request body, base64. */
  readonly body: string;
  readonly hasBody: boolean;
}

/** Echoes the request as JSON (after `x-delay` ms, when given); 413 for a body over the limit. */
const echo: Handler = (request, response) => {
  const run = async () => {
    const body = request.hasBody ? await request.body() : EMPTY;
    if (body === "gone") return;
    const wait = Number(headerOf(request.headers, "x-delay") ?? 0);
    if (wait > 0) await delay(wait);
    if (body === "too-large") {
      response.respond(413, ["content-type", "text/plain"], "too large");
      return;
    }
    const echoed: Echo = {
      method: request.method,
      target: request.target,
      headers: [...request.headers],
      body: body.toString("base64"),
      hasBody: request.hasBody,
    };
    response.respond(200, ["content-type", "application/json"], JSON.stringify(echoed));
  };
  run().catch((err: Error) => response.destroy(err));
};

function echoOf(response: Response): Echo {
  assert.equal(response.status, 200);
  assert.equal(response.headers.get("content-type"), "application/json");
  return JSON.parse(response.body.toString("utf8")) as Echo;
}

function get(path: string, headers = ""): string {
  return `GET ${path} HTTP/1.1\r\nHost: test\r\n${headers}\r\n`;
}

function post(path: string, body: string, headers = ""): string {
  return `POST ${path} HTTP/1.1\r\nHost: test\r\nContent-Length: ${Buffer.byteLength(body)}\r\n${headers}\r\n${body}`;
}

/** A request through Node's client. */
function nodeRequest(
  port: number,
  options: {
    method?: string;
    path?: string;
    headers?: Record<string, string>;
    body?: Buffer;
    agent?: Agent;
  } = {},
): Promise<{ status: number; headers: IncomingHttpHeaders; body: Buffer; reused: boolean }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        host: "127.0.0.1",
        port,
        method: options.method ?? "GET",
        path: options.path ?? "/",
        headers: options.headers,
        agent: options.agent ?? false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("error", reject);
        res.on("end", () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks),
            reused: req.reusedSocket,
          }),
        );
      },
    );
    req.on("error", reject);
    req.end(options.body);
  });
}

/** A promise and the function that resolves it. */
function deferred<T = void>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

/** Rejects after `ms`: for waits on the server's side. */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Waits (briefly) for the server to drop every connection: its sockets' 'close' comes a moment after the client's. */
async function drained(server: HttpServer): Promise<void> {
  for (let i = 0; i < 100 && server.connections > 0; i++) await delay(10);
  assert.equal(server.connections, 0, "connections left open");
}

/** Bytes of a known pattern, different for each `seed`. */
function pattern(size: number, seed: number): Buffer {
  const buf = Buffer.allocUnsafe(size);
  for (let i = 0; i < size; i++) buf[i] = (i * 31 + seed * 7 + (i >> 8)) & 0xff;
  return buf;
}

// ---------------------------------------------------------------------------------------------------

describe("keep-alive", () => {
  test("two sequential requests on one connection are both answered", async () => {
    const { server, port } = await serve(echo);
    const wire = await Wire.open(port);
    await wire.write(get("/one"));
    const [first] = await wire.responses(1);
    assert.equal(echoOf(first as Response).target, "/one");
    assert.equal(first?.headers.get("connection"), undefined);
    assert.equal(first?.headers.get("keep-alive"), "timeout=65");
    await wire.write(post("/two", "hello"));
    const [, second] = await wire.responses(2);
    const two = echoOf(second as Response);
    assert.equal(two.target, "/two");
    assert.equal(Buffer.from(two.body, "base64").toString(), "hello");
    assert.equal(wire.ended, false);
    assert.equal(server.connections, 1);
    wire.socket.destroy();
    await stop(server);
  });

  test("Node's keep-alive agent reuses the connection", async () => {
    const { server, port } = await serve(echo);
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const a = await nodeRequest(port, { path: "/a", agent });
      const b = await nodeRequest(port, { path: "/b", agent, method: "PUT", body: Buffer.from("xyz") });
      assert.equal(a.status, 200);
      assert.equal(a.reused, false);
      assert.equal(b.reused, true);
      assert.equal(JSON.parse(b.body.toString()).target, "/b");
      assert.equal(server.connections, 1);
    } finally {
      agent.destroy();
      await stop(server);
    }
  });

  test("Connection: close is answered with connection: close, then the socket closes", async () => {
    const { server, port } = await serve(echo);
    const wire = await Wire.open(port);
    await wire.write(get("/bye", "Connection: close\r\n"));
    const { finals } = await wire.all();
    assert.equal(finals.length, 1);
    assert.equal(finals[0]?.headers.get("connection"), "close");
    assert.equal(finals[0]?.headers.get("keep-alive"), undefined);
    assert.equal(echoOf(finals[0] as Response).target, "/bye");
    await stop(server);
  });

  test("an HTTP/1.0 request without keep-alive is closed after its response", async () => {
    const { server, port } = await serve(echo);
    const wire = await Wire.open(port);
    await wire.write("GET /old HTTP/1.0\r\n\r\n");
    const { finals } = await wire.all();
    assert.equal(finals.length, 1);
    assert.equal(finals[0]?.headers.get("connection"), "close");
    assert.equal(echoOf(finals[0] as Response).target, "/old");
    await stop(server);
  });

  test("an HTTP/1.0 request with Connection: keep-alive stays open", async () => {
    const { server, port } = await serve(echo);
    const wire = await Wire.open(port);
    await wire.write("GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    const [first] = await wire.responses(1);
    assert.equal(first?.headers.get("connection"), "keep-alive");
    assert.equal(first?.headers.get("keep-alive"), "timeout=65");
    await delay(30);
    assert.equal(wire.ended, false);
    await wire.write("GET /b HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    const [, second] = await wire.responses(2);
    assert.equal(echoOf(second as Response).target, "/b");
    // The next one without keep-alive is the last.
    await wire.write("GET /c HTTP/1.0\r\n\r\n");
    const { finals } = await wire.all();
    assert.equal(finals.length, 3);
    assert.equal(finals[2]?.headers.get("connection"), "close");
    await stop(server);
  });
});

describe("pipelining", () => {
  /** Answers after the delay in the path (`/wait/<ms>/…`), recording the order handlers start and end in. */
  function delayed(log: string[]): Handler {
    return (request, response) => {
      log.push(`start ${request.target}`);
      const wait = Number(/^\/wait\/(\d+)/.exec(request.target)?.[1] ?? 0);
      const answer = async () => {
        const body = request.hasBody ? await request.body() : EMPTY;
        if (typeof body === "string") throw new Error(body);
        if (wait > 0) await delay(wait);
        log.push(`end ${request.target}`);
        response.respond(200, [], `${request.method} ${request.target} ${body.toString()}`);
      };
      answer().catch((err: Error) => response.destroy(err));
    };
  }

  test("two requests in one write are answered in order, the slow first one first", async () => {
    const log: string[] = [];
    const { server, port } = await serve(delayed(log));
    const wire = await Wire.open(port);
    await wire.write(get("/wait/120/slow") + get("/fast"));
    const responses = await wire.responses(2);
    assert.deepEqual(
      responses.map((r) => r.body.toString()),
      ["GET /wait/120/slow ", "GET /fast "],
    );
    // One request at a time: the second handler starts only after the first answered.
    assert.deepEqual(log, ["start /wait/120/slow", "end /wait/120/slow", "start /fast", "end /fast"]);
    assert.equal(parseResponses(wire.bytes, false).rest, wire.bytes.length);
    wire.socket.destroy();
    await stop(server);
  });

  test("three requests in one write, one with a body, are answered in order", async () => {
    const log: string[] = [];
    const { server, port } = await serve(delayed(log));
    const wire = await Wire.open(port);
    const chunked =
      "POST /wait/10/c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
    await wire.write(post("/wait/80/a", "first body") + get("/b") + chunked);
    const responses = await wire.responses(3);
    assert.deepEqual(
      responses.map((r) => r.body.toString()),
      ["POST /wait/80/a first body", "GET /b ", "POST /wait/10/c abcde"],
    );
    for (const r of responses) assert.equal(r.framing, "length");
    await delay(20);
    assert.equal(parseResponses(wire.bytes, false).rest, wire.bytes.length, "no stray bytes");
    wire.socket.destroy();
    await stop(server);
  });

  test("a burst over the held-bytes limit is answered in full and in order", async () => {
    const { server, port } = await serve(echo);
    const wire = await Wire.open(port);
    const n = 300;
    const filler = "x".repeat(300);
    let burst = "";
    for (let i = 0; i < n; i++)
      burst += get(`/${i}`, `X-Filler: ${filler}\r\n${i % 50 === 0 ? "X-Delay: 5\r\n" : ""}`);
    assert.ok(burst.length > 64 * 1024);
    await wire.write(burst);
    const responses = await wire.responses(n, [], 10_000);
    assert.deepEqual(
      responses.map((r) => echoOf(r).target),
      Array.from({ length: n }, (_, i) => `/${i}`),
    );
    wire.socket.destroy();
    await stop(server);
  });

  test("a refusal after a valid pipelined request comes after its response", async () => {
    const { server, port } = await serve(echo);
    const wire = await Wire.open(port);
    await wire.write(`${get("/ok", "X-Delay: 30\r\n")}NOT A REQUEST\r\n\r\n`);
    const { finals } = await wire.all();
    assert.deepEqual(
      finals.map((r) => r.status),
      [200, 400],
    );
    await stop(server);
  });
});

describe("response framing", () => {
  /** Writes the body in pieces after a head without Content-Length (unless `?length`). */
  const streaming: Handler = (request, response) => {
    const pieces = ["first piece, ", "", "second, ", "x".repeat(5000), " and the last"];
    const withLength = request.target.includes("length");
    const status = Number(/status=(\d+)/.exec(request.target)?.[1] ?? 200);
    const total = pieces.reduce((n, p) => n + Buffer.byteLength(p), 0);
    response.writeHead(status, withLength ? ["content-length", String(total)] : ["x-streamed", "yes"]);
    const run = async () => {
      for (const piece of pieces) {
        response.write(Buffer.from(piece));
        await delay(2);
      }
      response.end();
    };
    run().catch((err: Error) => response.destroy(err));
  };
  const streamedBody = `first piece, second, ${"x".repeat(5000)} and the last`;

  test("a body without length goes chunked to an HTTP/1.1 client", async () => {
    const { server, port } = await serve(streaming);
    const wire = await Wire.open(port);
    await wire.write(get("/stream"));
    const [response] = await wire.responses(1);
    assert.equal(response?.framing, "chunked");
    assert.equal(response?.headers.get("transfer-encoding"), "chunked");
    assert.equal(response?.headers.get("x-streamed"), "yes");
    assert.equal(response?.body.toString(), streamedBody);
    // Still usable: the chunked body ended where it should.
    await wire.write(get("/stream"));
    const [, again] = await wire.responses(2);
    assert.equal(again?.body.toString(), streamedBody);
    wire.socket.destroy();
    await stop(server);
  });

  test("Node's client and fetch read the chunked body", async () => {
    const { server, port } = await serve(streaming);
    const viaNode = await nodeRequest(port, { path: "/stream" });
    assert.equal(viaNode.headers["transfer-encoding"], "chunked");
    assert.equal(viaNode.body.toString(), streamedBody);
    const viaFetch = await fetch(`http://127.0.0.1:${port}/stream`, { headers: { connection: "close" } });
    assert.equal(viaFetch.status, 200);
    assert.equal(await viaFetch.text(), streamedBody);
    await stop(server);
  });

  test("to an HTTP/1.0 client a body without length runs to the close", async () => {
    const { server, port } = await serve(streaming);
    for (const extra of ["", "Connection: keep-alive\r\n"]) {
      const wire = await Wire.open(port);
      await wire.write(`GET /stream HTTP/1.0\r\n${extra}\r\n`);
      const { finals } = await wire.all();
      assert.equal(finals.length, 1);
      assert.equal(finals[0]?.framing, "close");
      assert.equal(finals[0]?.headers.get("connection"), "close");
      assert.equal(finals[0]?.headers.get("transfer-encoding"), undefined);
      assert.equal(finals[0]?.body.toString(), streamedBody);
    }
    await stop(server);
  });

  test("with a Content-Length the body is passed raw", async () => {
    const { server, port } = await serve(streaming);
    const wire = await Wire.open(port);
    await wire.write(get("/stream?length") + get("/stream?length"));
    const responses = await wire.responses(2);
    for (const r of responses) {
      assert.equal(r.framing, "length");
      assert.equal(r.headers.get("transfer-encoding"), undefined);
      assert.equal(r.body.toString(), streamedBody);
    }
    const raw = wire.text;
    assert.equal(raw.indexOf(streamedBody), raw.indexOf("\r\n\r\n") + 4);
    wire.socket.destroy();
    await stop(server);
  });

  test("HEAD, 204 and 304 carry no body bytes even when the handler writes some", async () => {
    const { server, port } = await serve(streaming);
    const wire = await Wire.open(port);
    const requests = [
      "HEAD /stream HTTP/1.1\r\nHost: t\r\n\r\n",
      "HEAD /stream?length HTTP/1.1\r\nHost: t\r\n\r\n",
      get("/stream?status=204"),
      get("/stream?status=304&length"),
      get("/stream?status=304"),
      get("/stream"),
    ];
    await wire.write(requests.join(""));
    const heads = [true, true];
    const responses = await wire.responses(requests.length, heads);
    assert.deepEqual(
      responses.map((r) => [r.status, r.body.length]),
      [
        [200, 0],
        [200, 0],
        [204, 0],
        [304, 0],
        [304, 0],
        [200, streamedBody.length],
      ],
    );
    // A HEAD answer keeps its Content-Length (the length a GET would have) but is never chunked.
    assert.equal(responses[0]?.headers.get("transfer-encoding"), undefined);
    assert.equal(responses[1]?.headers.get("content-length"), String(streamedBody.length));
    assert.equal(responses[2]?.headers.get("transfer-encoding"), undefined);
    assert.equal(responses[5]?.body.toString(), streamedBody);
    await delay(20);
    assert.equal(parseResponses(wire.bytes, false, (i) => heads[i] === true).rest, wire.bytes.length);
    wire.socket.destroy();
    await stop(server);
  });

  test("respond() sets content-length (in bytes) and date", async () => {
    const text = "héllo ✓ wörld";
    const { server, port } = await serve((_request, response) =>
      response.respond(201, ["content-type", "text/plain; charset=utf-8"], text),
    );
    const wire = await Wire.open(port);
    await wire.write(get("/"));
    const [response] = await wire.responses(1);
    assert.equal(response?.status, 201);
    assert.equal(response?.headers.get("content-length"), String(Buffer.byteLength(text)));
    assert.equal(response?.body.toString("utf8"), text);
    const date = response?.headers.get("date") ?? "";
    assert.match(date, /^[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT$/);
    assert.ok(Math.abs(Date.parse(date) - Date.now()) < 5_000);
    assert.equal(response?.names.filter((n) => n === "content-length").length, 1);
    wire.socket.destroy();
    await stop(server);
  });

  test("closeAfter() closes the connection after the response", async () => {
    const { server, port } = await serve((_request, response) => {
      response.closeAfter();
      response.respond(200, [], "last");
    });
    const wire = await Wire.open(port);
    await wire.write(get("/") + get("/never"));
    const { finals } = await wire.all();
    assert.equal(finals.length, 1);
    assert.equal(finals[0]?.headers.get("connection"), "close");
    await stop(server);
  });
});

describe("request bodies", () => {
  test("a Content-Length body sent in pieces arrives whole", async () => {
    const { server, port } = await serve(echo);
    const wire = await Wire.open(port);
    const body = pattern(100_000, 1);
    await wire.write(`PUT /up HTTP/1.1\r\nHost: t\r\nContent-Length: ${body.length}\r\n\r\n`);
    for (let at = 0; at < body.length; at += 30_000) {
      await delay(5);
      await wire.write(body.subarray(at, at + 30_000));
    }
    const [response] = await wire.responses(1);
    const echoed = echoOf(response as Response);
    assert.equal(echoed.hasBody, true);
    assert.ok(Buffer.from(echoed.body, "base64").equals(body));
    wire.socket.destroy();
    await stop(server);
  });

  test("a chunked body (with extensions and trailers) arrives whole", async () => {
    const { server, port } = await serve(echo);
    const wire = await Wire.open(port);
    const parts = [pattern(10, 2), pattern(4096, 3), pattern(1, 4)];
    let wireBody = "";
    for (const p of parts) wireBody += `${p.length.toString(16)};ext=1\r\n${p.toString("latin1")}\r\n`;
    wireBody += "0\r\nx-trailer: yes\r\n\r\n";
    const message = Buffer.from(
      `POST /chunks HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n${wireBody}`,
      "latin1",
    );
    // Cut everywhere interesting: in sizes, data and the final CRLF.
    for (const cut of [50, 61, 70, 2000, message.length - 3, message.length - 1]) {
      await wire.write(message.subarray(0, cut));
      await delay(2);
      await wire.write(message.subarray(cut));
    }
    const responses = await wire.responses(6);
    for (const r of responses) assert.ok(Buffer.from(echoOf(r).body, "base64").equals(Buffer.concat(parts)));
    wire.socket.destroy();
    await stop(server);
  });

  test("Node's client sends a body; a request without one has none", async () => {
    const { server, port } = await serve(echo);
    const body = pattern(20_000, 5);
    const withBody = await nodeRequest(port, { method: "POST", path: "/p", body });
    assert.ok(Buffer.from(JSON.parse(withBody.body.toString()).body, "base64").equals(body));
    const without = JSON.parse(
      (await nodeRequest(port, { method: "DELETE", path: "/d" })).body.toString(),
    ) as Echo;
    assert.equal(without.hasBody, false);
    assert.equal(without.body, "");
    await stop(server);
  });

  test("Expect: 100-continue gets 100 Continue before the body is sent", async () => {
    let asked = 0;
    const { server, port } = await serve((request, response) => {
      asked++;
      echo(request, response);
    });
    const wire = await Wire.open(port);
    await wire.write(
      "POST /e HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 11\r\nX-Delay: 5\r\n\r\n",
    );
    await wire.until(() => (wire.text.includes("\r\n\r\n") ? true : undefined), "100 Continue");
    assert.equal(wire.text, "HTTP/1.1 100 Continue\r\n\r\n");
    assert.equal(asked, 1);
    await wire.write("hello world");
    await wire.responses(1);
    const { finals, interim } = parseResponses(wire.bytes, false);
    assert.deepEqual(
      interim.map((r) => r.status),
      [100],
    );
    assert.equal(Buffer.from(echoOf(finals[0] as Response).body, "base64").toString(), "hello world");
    // The connection goes on; a request without Expect gets no 100.
    await wire.write(post("/f", "again"));
    await wire.responses(2);
    assert.equal(parseResponses(wire.bytes, false).interim.length, 1);
    wire.socket.destroy();
    await stop(server);
  });

  test("Node's client waits for 100 Continue, then sends the body", async () => {
    const { server, port } = await serve(echo);
    const result = await new Promise<{ continued: boolean; body: string }>((resolve, reject) => {
      let continued = false;
      const req = httpRequest(
        {
          host: "127.0.0.1",
          port,
          method: "POST",
          path: "/n",
          agent: false,
          headers: { expect: "100-continue", "content-length": "4" },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () => resolve({ continued, body: Buffer.concat(chunks).toString() }));
        },
      );
      req.on("continue", () => {
        continued = true;
        req.end("data");
      });
      req.on("error", reject);
    });
    assert.equal(result.continued, true);
    assert.equal(Buffer.from(JSON.parse(result.body).body, "base64").toString(), "data");
    await stop(server);
  });

  test("a declared Content-Length over the limit is 'too-large' without the body being read", async () => {
    const seen: (Buffer | string)[] = [];
    const { server, port } = await serve(
      (request, response) => {
        const run = async () => {
          const body = await request.body();
          seen.push(body);
          response.respond(413, [], "too large");
        };
        run().catch((err: Error) => response.destroy(err));
      },
      { maxBodyBytes: 1024 },
    );
    // The body is never sent (nor a 100 Continue asked for): the answer comes anyway.
    for (const expect of ["", "Expect: 100-continue\r\n"]) {
      const wire = await Wire.open(port);
      await wire.write(`POST /big HTTP/1.1\r\nHost: t\r\nContent-Length: 10000000\r\n${expect}\r\n`);
      const { finals, interim } = await wire.all();
      assert.equal(interim.length, 0, "no 100 Continue for a body that will not be read");
      assert.deepEqual(
        finals.map((r) => r.status),
        [413],
      );
    }
    assert.deepEqual(seen, ["too-large", "too-large"]);
    await stop(server);
  });

  test("a chunked body over the limit is 'too-large' and the connection closes after the 413", async () => {
    const seen: (Buffer | string)[] = [];
    const { server, port } = await serve(
      (request, response) => {
        const run = async () => {
          const body = await request.body();
          seen.push(body);
          response.respond(body === "too-large" ? 413 : 200, [], "");
        };
        run().catch((err: Error) => response.destroy(err));
      },
      { maxBodyBytes: 1024 },
    );
    const wire = await Wire.open(port);
    await wire.write("POST /big HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n");
    for (let i = 0; i < 3; i++) {
      await delay(5);
      // The server may have answered and closed already.
      if (!wire.ended) await wire.write(`258\r\n${"y".repeat(600)}\r\n`).catch(() => {});
    }
    const { finals } = await wire.all();
    assert.deepEqual(
      finals.map((r) => r.status),
      [413],
    );
    assert.deepEqual(seen, ["too-large"]);
    // A body at the limit is fine.
    const ok = await Wire.open(port);
    await ok.write(post("/fine", "z".repeat(1024)));
    assert.equal((await ok.responses(1))[0]?.status, 200);
    assert.ok(Buffer.isBuffer(seen[1]) && seen[1].length === 1024);
    ok.socket.destroy();
    await stop(server);
  });

  test("body() of a request without a body is empty", async () => {
    let got: Buffer | string | undefined;
    const { server, port } = await serve((request, response) => {
      request.body().then(
        (body) => {
          got = body;
          response.respond(200, [], "");
        },
        (err: Error) => response.destroy(err),
      );
    });
    const wire = await Wire.open(port);
    await wire.write(post("/empty", ""));
    await wire.responses(1);
    assert.ok(Buffer.isBuffer(got) && got.length === 0);
    wire.socket.destroy();
    await stop(server);
  });
});

describe("refusals by the server itself", () => {
  let called = 0;
  const never: Handler = () => {
    called++;
  };

  async function refused(port: number, bytes: string): Promise<{ status: number; code: string }> {
    const wire = await Wire.open(port);
    await wire.write(bytes);
    const { finals } = await wire.all();
    assert.equal(finals.length, 1);
    const response = finals[0] as Response;
    assert.equal(response.headers.get("connection"), "close");
    assert.equal(response.headers.get("content-type"), "application/json");
    const parsed = JSON.parse(response.body.toString()) as { error: { code: string; message: string } };
    assert.equal(typeof parsed.error.message, "string");
    return { status: response.status, code: parsed.error.code };
  }

  test("malformed requests get a JSON error and the connection closes", async () => {
    const { server, port } = await serve(never, { maxHeadBytes: 1024 });
    const cases: [string, number, string][] = [
      ["GARBAGE\r\n\r\n", 400, "RINGFENCE_BAD_REQUEST"],
      ["GET / HTTP/1.1\r\n\r\n", 400, "RINGFENCE_BAD_REQUEST"],
      ["GET /\x01 HTTP/1.1\r\nHost: t\r\n\r\n", 400, "RINGFENCE_BAD_REQUEST"],
      [
        "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
        400,
        "RINGFENCE_BAD_REQUEST",
      ],
      ["GET / HTTP/2.0\r\nHost: t\r\n\r\n", 505, "RINGFENCE_HTTP_VERSION_NOT_SUPPORTED"],
      ["POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n", 501, "RINGFENCE_NOT_IMPLEMENTED"],
      ["GET / HTTP/1.1\r\nHost: t\r\nExpect: tea\r\n\r\n", 417, "RINGFENCE_EXPECTATION_FAILED"],
      [`GET / HTTP/1.1\r\nHost: t\r\nX-Big: ${"a".repeat(2000)}\r\n\r\n`, 431, "RINGFENCE_HEADERS_TOO_LARGE"],
      [`GET / HTTP/1.1\r\nHost: t\r\nX-Big: ${"a".repeat(2000)}`, 431, "RINGFENCE_HEADERS_TOO_LARGE"],
    ];
    for (const [bytes, status, code] of cases)
      assert.deepEqual(await refused(port, bytes), { status, code }, JSON.stringify(bytes.slice(0, 60)));
    assert.equal(called, 0, "the handler was called");
    await drained(server);
    await stop(server);
  });

  test("a malformed chunked body is refused with 400, and body() resolves 'gone'", async () => {
    const bodies: (Buffer | string)[] = [];
    const closes: boolean[] = [];
    const handed = deferred();
    const { server, port } = await serve((request, response) => {
      response.once("close", () => closes.push(response.writableFinished));
      request.body().then(
        (body) => bodies.push(body),
        () => {},
      );
      handed.resolve();
    });
    // Refused before the handler was given the request: it never hears of it.
    const early = await refused(
      port,
      "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    );
    assert.deepEqual(early, { status: 400, code: "RINGFENCE_BAD_REQUEST" });
    assert.deepEqual(bodies, []);
    // Refused while the handler waits for the body: it learns that the body will not come.
    const wire = await Wire.open(port);
    await wire.write("POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n");
    await handed.promise;
    await wire.write("zz\r\n");
    const { finals } = await wire.all();
    assert.deepEqual(
      finals.map((r) => [r.status, JSON.parse(r.body.toString()).error.code]),
      [[400, "RINGFENCE_BAD_REQUEST"]],
    );
    assert.deepEqual(bodies, ["gone"]);
    assert.deepEqual(closes, [false]);
    await drained(server);
    await stop(server);
  });

  test("silent and slow clients get 408 after headersTimeoutMs while others are served", async () => {
    const bodies: (Buffer | string)[] = [];
    const closes: string[] = [];
    const { server, port } = await serve(
      (request, response) => {
        if (request.target === "/slow-body") {
          response.once("close", () => closes.push(`${request.target} ${response.writableFinished}`));
          request.body().then(
            (body) => bodies.push(body),
            () => {},
          );
          return;
        }
        echo(request, response);
      },
      { headersTimeoutMs: 300 },
    );
    const started = performance.now();
    const silent = await Wire.open(port);
    const halfHead = await Wire.open(port);
    await halfHead.write("GET / HTTP/1.1\r\nHost: t\r\nX-Wait");
    const slowBody = await Wire.open(port);
    await slowBody.write("POST /slow-body HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n0123456789");
    // Meanwhile a healthy client is served, over and over.
    const healthy = await Wire.open(port);
    for (let i = 0; i < 10; i++) {
      await healthy.write(get(`/h${i}`));
      await healthy.responses(i + 1);
      await delay(40);
    }
    for (const wire of [silent, halfHead, slowBody]) {
      const { finals } = await wire.all();
      const elapsed = performance.now() - started;
      assert.equal(finals.length, 1);
      assert.equal(finals[0]?.status, 408);
      assert.equal(JSON.parse(finals[0]?.body.toString() ?? "").error.code, "RINGFENCE_REQUEST_TIMEOUT");
      assert.ok(elapsed >= 290, `408 after ${elapsed} ms, before the request timeout`);
    }
    assert.deepEqual(bodies, ["gone"]);
    assert.deepEqual(closes, ["/slow-body false"]);
    // The healthy client's connection was never refused.
    assert.equal(healthy.ended, false);
    const all = await healthy.responses(10);
    assert.ok(all.every((r) => r.status === 200));
    healthy.socket.destroy();
    await stop(server);
  });

  test("a slow head on a kept-alive connection gets 408 too", async () => {
    const { server, port } = await serve(echo, { headersTimeoutMs: 200 });
    const wire = await Wire.open(port);
    await wire.write(get("/first"));
    await wire.responses(1);
    await wire.write("GET /second HTTP/1.1\r\n");
    const { finals } = await wire.all();
    assert.deepEqual(
      finals.map((r) => r.status),
      [200, 408],
    );
    await stop(server);
  });

  test("a slow handler is not a slow client: no 408 while it thinks", async () => {
    const { server, port } = await serve(echo, { headersTimeoutMs: 100 });
    const wire = await Wire.open(port);
    await wire.write(post("/think", "body", "X-Delay: 400\r\n"));
    const [response] = await wire.responses(1);
    assert.equal(response?.status, 200);
    wire.socket.destroy();
    await stop(server);
  });
});

describe("timeouts of idle connections", () => {
  test("an idle keep-alive connection closes after keepAliveTimeoutMs", async () => {
    const { server, port } = await serve(echo, { keepAliveTimeoutMs: 200 });
    const wire = await Wire.open(port);
    await wire.write(get("/"));
    await wire.responses(1);
    const idleFrom = performance.now();
    await wire.untilClosed();
    const idle = performance.now() - idleFrom;
    assert.ok(idle >= 150 && idle < 1_500, `closed after ${idle} ms idle`);
    // Closed without another word (no 408 for an idle connection).
    assert.equal(parseResponses(wire.bytes, true).finals.length, 1);
    await drained(server);
    await stop(server);
  });

  test("a connection in use is not closed as idle", async () => {
    const { server, port } = await serve(echo, { keepAliveTimeoutMs: 150 });
    const wire = await Wire.open(port);
    // Requests every 50 ms for 400 ms, and a handler slower than the keep-alive timeout.
    for (let i = 0; i < 8; i++) {
      await wire.write(get(`/${i}`));
      await wire.responses(i + 1);
      await delay(50);
    }
    await wire.write(get("/slow", "X-Delay: 300\r\n"));
    const responses = await wire.responses(9);
    assert.equal(echoOf(responses[8] as Response).target, "/slow");
    wire.socket.destroy();
    await stop(server);
  });
});

describe("clients that go away", () => {
  test("a response held open learns of a reset client: 'close', writableFinished false", async () => {
    const closed = deferred<boolean>();
    const handed = deferred();
    const { server, port } = await serve((_request, response) => {
      response.once("close", () => closed.resolve(response.writableFinished));
      handed.resolve();
    });
    const wire = await Wire.open(port);
    await wire.write(get("/hold"));
    await handed.promise;
    wire.socket.resetAndDestroy();
    assert.equal(await within(closed.promise, 2_000, "'close'"), false);
    await drained(server);
    await stop(server);
  });

  test("a streaming response learns that the client closed at its next write", async () => {
    const closed = deferred<boolean>();
    let writes = 0;
    let stopped = false;
    const { server, port } = await serve((_request, response) => {
      response.writeHead(200, []);
      response.once("close", () => {
        stopped = true;
        closed.resolve(response.writableFinished);
      });
      const tick = () => {
        if (stopped) return;
        writes++;
        response.write(Buffer.from("tick\n"));
        setTimeout(tick, 10);
      };
      tick();
    });
    const wire = await Wire.open(port);
    await wire.write(get("/events"));
    await wire.until(() => (wire.text.includes("tick") ? true : undefined), "a first tick");
    wire.socket.destroy();
    assert.equal(await within(closed.promise, 2_000, "'close'"), false);
    assert.ok(writes < 100);
    await drained(server);
    await stop(server);
  });

  test("a body() waiter resolves 'gone' when the client leaves mid-body", async () => {
    const bodies: (Buffer | string)[] = [];
    let gone = deferred();
    const { server, port } = await serve((request) => {
      request.body().then(
        (body) => {
          bodies.push(body);
          gone.resolve();
        },
        () => {},
      );
    });
    // One leaves with a reset, the other with a plain close (FIN) that can only be the end: the
    // request is incomplete. Either way the body is not waited for until the headers timeout.
    for (const leave of [(s: Socket) => s.resetAndDestroy(), (s: Socket) => s.destroy()]) {
      gone = deferred();
      const wire = await Wire.open(port);
      await wire.write("POST /partial HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n0123456789");
      await delay(20);
      leave(wire.socket);
      await within(gone.promise, 2_000, "body() to resolve");
    }
    assert.deepEqual(bodies, ["gone", "gone"]);
    await drained(server);
    await stop(server);
  });

  test("the server goes on serving after clients vanish at every stage", async () => {
    const { server, port } = await serve(echo);
    const stages = [
      "",
      "GET / HTTP/1.1\r\n",
      "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nab",
      "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
      get("/", "X-Delay: 30\r\n"),
    ];
    for (const bytes of stages) {
      for (const reset of [false, true]) {
        const wire = await Wire.open(port);
        if (bytes) await wire.write(bytes);
        await delay(5);
        if (reset) wire.socket.resetAndDestroy();
        else wire.socket.destroy();
      }
    }
    await delay(100);
    const ok = await nodeRequest(port, { path: "/alive" });
    assert.equal(ok.status, 200);
    await drained(server);
    await stop(server);
  });
});

describe("backpressure", () => {
  test("32 MiB written in 64 KiB chunks to a slow reader arrive intact", async () => {
    const chunkSize = 64 * 1024;
    const chunks = 512;
    let pushedBack = 0;
    const sent = createHash("sha256");
    const done = deferred();
    const { server, port } = await serve((_request, response) => {
      response.writeHead(200, []);
      let i = 0;
      const pump = () => {
        while (i < chunks) {
          const chunk = pattern(chunkSize, i);
          sent.update(chunk);
          i++;
          if (!response.write(chunk)) {
            pushedBack++;
            response.once("drain", pump);
            return;
          }
        }
        response.end();
        done.resolve();
      };
      pump();
    });
    const socket = connect({ port, host: "127.0.0.1" });
    const received: Buffer[] = [];
    const closed = new Promise<void>((resolve, reject) => {
      socket.on("error", reject);
      socket.on("close", () => resolve());
    });
    socket.write(get("/big", "Connection: close\r\n"));
    // Slow: nothing read for 200 ms, then a pause after every read.
    socket.pause();
    await delay(200);
    socket.on("data", (chunk: Buffer) => {
      received.push(chunk);
      socket.pause();
      setTimeout(() => socket.resume(), 1);
    });
    socket.resume();
    await closed;
    await done.promise;
    const { finals, rest } = parseResponses(Buffer.concat(received), true);
    const all = Buffer.concat(received);
    assert.equal(rest, all.length);
    assert.equal(finals.length, 1);
    assert.equal(finals[0]?.framing, "chunked");
    assert.equal(finals[0]?.body.length, chunkSize * chunks);
    assert.equal(
      createHash("sha256")
        .update(finals[0]?.body ?? EMPTY)
        .digest("hex"),
      sent.digest("hex"),
    );
    assert.ok(pushedBack > 0, "write() never returned false");
    await stop(server);
  });
});

describe("half-close", () => {
  test("a client that ends its side after its request still gets the whole response", async () => {
    const { server, port } = await serve(echo);
    const wire = await Wire.open(port);
    wire.socket.end(post("/half", "body", "X-Delay: 50\r\n"));
    const { finals } = await wire.all();
    assert.equal(finals.length, 1);
    assert.equal(Buffer.from(echoOf(finals[0] as Response).body, "base64").toString(), "body");
    await stop(server);
  });

  test("a client that ends its side after pipelined requests gets every response", async () => {
    const { server, port } = await serve(echo);
    for (const wait of ["", "X-Delay: 30\r\n"]) {
      const wire = await Wire.open(port);
      wire.socket.end(get("/1", wait) + post("/2", "two", wait) + get("/3"));
      const { finals } = await wire.all();
      assert.deepEqual(
        finals.map((r) => echoOf(r).target),
        ["/1", "/2", "/3"],
      );
    }
    await stop(server);
  });

  test("a client that ends its side in the middle of a head is closed", async () => {
    const { server, port } = await serve(echo);
    const wire = await Wire.open(port);
    wire.socket.end(`${get("/whole")}GET /cut HTTP/1.1\r\nHo`);
    const { finals } = await wire.all();
    assert.deepEqual(
      finals.map((r) => echoOf(r).target),
      ["/whole"],
    );
    await stop(server);
  });
});

describe("close()", () => {
  test("stops the server and closes every open connection", async () => {
    const handed = deferred();
    const closes: boolean[] = [];
    const { server, port } = await serve((request, response) => {
      if (request.target === "/hold") {
        response.once("close", () => closes.push(response.writableFinished));
        handed.resolve();
        return;
      }
      echo(request, response);
    });
    const fresh = await Wire.open(port);
    const idle = await Wire.open(port);
    await idle.write(get("/"));
    await idle.responses(1);
    const busy = await Wire.open(port);
    await busy.write(get("/hold"));
    await handed.promise;
    const partial = await Wire.open(port);
    await partial.write("GET / HTTP/1.1\r\n");
    await delay(20);
    assert.equal(server.connections, 4);
    await within(stop(server), 2_000, "close()");
    assert.equal(server.connections, 0);
    for (const wire of [fresh, idle, busy, partial]) await wire.untilClosed();
    assert.deepEqual(closes, [false]);
    await assert.rejects(Wire.open(port), { code: "ECONNREFUSED" });
    // Closing again is harmless.
    await server.close();
  });
});

describe("properties", () => {
  interface RandomRequest {
    readonly method: "GET" | "POST" | "PUT";
    readonly path: string;
    readonly body: Uint8Array | undefined;
    readonly chunked: boolean;
    readonly chunkSizes: readonly number[];
    readonly delayMs: number;
  }

  const requestArb: fc.Arbitrary<RandomRequest> = fc.record({
    method: fc.constantFrom("GET", "POST", "PUT"),
    path: fc
      .tuple(
        fc.array(fc.constantFrom(..."abcxyz0189-._~/"), { maxLength: 16 }),
        fc.option(fc.array(fc.constantFrom(..."abc=&%20"), { maxLength: 10 }), { nil: undefined }),
      )
      .map(([p, q]) => `/${p.join("")}${q === undefined ? "" : `?${q.join("")}`}`),
    body: fc.option(fc.uint8Array({ maxLength: 3000 }), { nil: undefined }),
    chunked: fc.boolean(),
    chunkSizes: fc.array(fc.integer({ min: 1, max: 700 }), { minLength: 1, maxLength: 5 }),
    delayMs: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 15 })),
  });

  function encode(r: RandomRequest): Buffer {
    let head = `${r.method} ${r.path} HTTP/1.1\r\nHost: prop\r\nX-Delay: ${r.delayMs}\r\n`;
    if (r.body === undefined) return Buffer.from(`${head}\r\n`, "latin1");
    const body = Buffer.from(r.body);
    if (!r.chunked)
      return Buffer.concat([Buffer.from(`${head}Content-Length: ${body.length}\r\n\r\n`), body]);
    head += "Transfer-Encoding: chunked\r\n\r\n";
    const parts: Buffer[] = [Buffer.from(head, "latin1")];
    let at = 0;
    let k = 0;
    while (at < body.length) {
      const size = Math.min(r.chunkSizes[k++ % r.chunkSizes.length] as number, body.length - at);
      parts.push(Buffer.from(`${size.toString(16)}\r\n`), body.subarray(at, at + size), Buffer.from("\r\n"));
      at += size;
    }
    parts.push(Buffer.from("0\r\n\r\n"));
    return Buffer.concat(parts);
  }

  test("random pipelined requests in random pieces are all answered, in order", async () => {
    const { server, port } = await serve(echo);
    await fc.assert(
      fc.asyncProperty(
        fc.array(requestArb, { minLength: 1, maxLength: 5 }),
        fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 8 }),
        async (requests, cutFractions) => {
          const bytes = Buffer.concat(requests.map(encode));
          const cuts = [...new Set(cutFractions.map((f) => Math.floor(f * bytes.length)))]
            .filter((c) => c > 0 && c < bytes.length)
            .sort((a, b) => a - b);
          const wire = await Wire.open(port);
          try {
            let from = 0;
            for (const cut of [...cuts, bytes.length]) {
              await wire.write(bytes.subarray(from, cut));
              from = cut;
              await delay(1);
            }
            const responses = await wire.responses(requests.length);
            assert.equal(responses.length, requests.length);
            for (let i = 0; i < requests.length; i++) {
              const r = requests[i] as RandomRequest;
              const echoed = echoOf(responses[i] as Response);
              assert.equal(echoed.method, r.method);
              assert.equal(echoed.target, r.path);
              assert.equal(echoed.hasBody, r.body !== undefined && (r.chunked || r.body.length > 0));
              assert.ok(Buffer.from(echoed.body, "base64").equals(Buffer.from(r.body ?? EMPTY)));
            }
            await delay(1);
            assert.equal(parseResponses(wire.bytes, false).rest, wire.bytes.length, "no stray bytes");
            assert.equal(wire.ended, false);
          } finally {
            wire.socket.destroy();
          }
        },
      ),
      { numRuns: 60 },
    );
    await stop(server);
  });
});
