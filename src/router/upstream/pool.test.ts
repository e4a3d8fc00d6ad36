/**
 * The upstream pool against real sockets on 127.0.0.1: small raw `net` servers where the exact bytes
 * and timing matter, node:http where they do not. Every test closes its pool, servers and sockets
 * in `t.after`, so a failing test leaves nothing running.
 */
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { once } from "node:events";
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from "node:http";
import { createServer, type Server, type Socket } from "node:net";
import { Writable } from "node:stream";
import { type TestContext, test } from "node:test";
import type { ResponseHead } from "./parser.js";
import {
  type BodySink,
  type Exchange,
  type ExchangeLimits,
  UpstreamError,
  UpstreamPool,
  type UpstreamPoolOptions,
  type UpstreamRequest,
} from "./pool.js";

const LIMITS: ExchangeLimits = { headersTimeoutMs: 5_000, bodyTimeoutMs: 5_000 };
/** Per test: a hang fails the test instead of the run. */
const TIMEOUT = { timeout: 20_000 };

function get(path: string, headerLines = ""): UpstreamRequest {
  return { method: "GET", path, headerLines, body: undefined };
}

function pool(t: TestContext, port: number, options: Partial<UpstreamPoolOptions> = {}): UpstreamPool {
  const p = new UpstreamPool({ host: "127.0.0.1", port, ...options });
  t.after(() => p.close());
  return p;
}

/** A promise and its settlers (`Promise.withResolvers` is Node 22). */
function deferred<T>(): {
  promise: Promise<T>;
  resolve: (value: T) => void;
  reject: (error: unknown) => void;
} {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Resolves once `condition` holds, checked after each turn of the event loop; fails after 5 s. */
async function until(condition: () => boolean, what: string): Promise<void> {
  const giveUp = performance.now() + 5_000;
  while (!condition()) {
    if (performance.now() > giveUp) assert.fail(`timed out waiting until ${what}`);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/** Lets `n` turns of the event loop (each with a poll for I/O) pass. */
async function turns(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise((resolve) => setImmediate(resolve));
}

// ---- Servers ----------------------------------------------------------------------------------

interface RawRequest {
  readonly method: string;
  readonly path: string;
  /** The request's bytes as received, head and body. */
  readonly raw: string;
  /** Header names in lower case. */
  readonly headers: Map<string, string>;
  /** Which accepted connection it came on, from 0. */
  readonly connection: number;
}

interface RawServer {
  readonly port: number;
  readonly sockets: Socket[];
  readonly requests: RawRequest[];
  /** Most connections open at once. */
  readonly maxOpen: number;
  /** Resolves when the `n`th request (from 1) has arrived. */
  request(n: number): Promise<RawRequest>;
  /** Resolves when the `i`th accepted connection (from 0) has closed. */
  closed(i: number): Promise<void>;
}

/**
 * A raw HTTP/1.1 server: reads requests (head, and a body by Content-Length) off each connection
 * and hands them to `respond`, which writes whatever bytes it likes, or nothing.
 */
async function rawServer(
  t: TestContext,
  respond: (req: RawRequest, socket: Socket) => void,
): Promise<RawServer> {
  const sockets: Socket[] = [];
  const requests: RawRequest[] = [];
  const closes: Promise<void>[] = [];
  const waiting: { n: number; resolve: (r: RawRequest) => void }[] = [];
  let open = 0;
  let maxOpen = 0;
  const server: Server = createServer((socket) => {
    const connection = sockets.length;
    sockets.push(socket);
    open++;
    maxOpen = Math.max(maxOpen, open);
    closes.push(once(socket, "close").then(() => void open--));
    socket.on("error", () => {});
    let pending = Buffer.alloc(0);
    socket.on("data", (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      for (;;) {
        const end = pending.indexOf("\r\n\r\n");
        if (end < 0) return;
        const head = pending.toString("latin1", 0, end);
        const [requestLine = "", ...lines] = head.split("\r\n");
        const headers = new Map<string, string>();
        for (const line of lines) {
          const colon = line.indexOf(":");
          headers.set(line.slice(0, colon).toLowerCase(), line.slice(colon + 1).trim());
        }
        const length = Number(headers.get("content-length") ?? 0);
        if (pending.length < end + 4 + length) return;
        const [method = "", path = ""] = requestLine.split(" ");
        const request: RawRequest = {
          method,
          path,
          raw: pending.toString("latin1", 0, end + 4 + length),
          headers,
          connection,
        };
        pending = pending.subarray(end + 4 + length);
        requests.push(request);
        respond(request, socket);
        for (const w of waiting.filter((w) => w.n <= requests.length)) {
          waiting.splice(waiting.indexOf(w), 1);
          w.resolve(requests[w.n - 1] as RawRequest);
        }
      }
    });
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  t.after(async () => {
    for (const socket of sockets) socket.destroy();
    server.close();
    await once(server, "close");
  });
  return {
    port: (server.address() as { port: number }).port,
    sockets,
    requests,
    get maxOpen() {
      return maxOpen;
    },
    request(n) {
      const seen = requests[n - 1];
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve) => waiting.push({ n, resolve }));
    },
    async closed(i) {
      await until(() => closes[i] !== undefined, `connection ${i} is accepted`);
      await closes[i];
    },
  };
}

/** A response with a Content-Length body and the given extra header lines. */
function response(body: string | Buffer, headerLines = ""): Buffer {
  const data = typeof body === "string" ? Buffer.from(body) : body;
  return Buffer.concat([
    Buffer.from(`HTTP/1.1 200 OK\r\n${headerLines}content-length: ${data.length}\r\n\r\n`, "latin1"),
    data,
  ]);
}

/** A node:http server; counts the connections it accepted. */
async function httpServer(
  t: TestContext,
  handler: (req: IncomingMessage, res: ServerResponse) => void,
): Promise<{ port: number; connections: () => number }> {
  let connections = 0;
  const server = createHttpServer(handler);
  server.on("connection", () => connections++);
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  t.after(async () => {
    server.closeAllConnections();
    server.close();
    await once(server, "close");
  });
  return { port: (server.address() as { port: number }).port, connections: () => connections };
}

// ---- Exchanges --------------------------------------------------------------------------------

/** A Writable that keeps what it is sent; with `slow`, each chunk is taken a turn later. */
class Collector extends Writable {
  readonly chunks: Buffer[] = [];
  readonly #slow: boolean;

  constructor(options: { highWaterMark?: number; slow?: boolean } = {}) {
    super({ highWaterMark: options.highWaterMark ?? 16 * 1024 });
    this.#slow = options.slow ?? false;
    // Destroyed with the exchange's error (read from `errored`); without a listener it would be thrown.
    this.on("error", () => {});
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.chunks.push(chunk);
    if (this.#slow) setImmediate(callback);
    else callback();
  }

  get body(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

interface Sent {
  readonly exchange: Exchange;
  /** The head, or the error that ended the exchange before it. */
  readonly head: Promise<ResponseHead>;
}

function send(p: UpstreamPool, request: UpstreamRequest, limits: ExchangeLimits = LIMITS): Sent {
  const head = deferred<ResponseHead>();
  const exchange = p.request(request, limits, (error, h) => {
    if (error) head.reject(error);
    else head.resolve(h as ResponseHead);
  });
  return { exchange, head: head.promise };
}

/** Pipes the exchange's body into `sink`; resolves with `done`'s error (undefined when it ended well). */
function pipe(exchange: Exchange, sink: BodySink): Promise<Error | undefined> {
  return new Promise((resolve) => exchange.pipe(sink, resolve));
}

/** One whole exchange: the head, then the body through a Collector. */
async function fetchText(
  p: UpstreamPool,
  request: UpstreamRequest,
): Promise<{ status: number; body: string }> {
  const { exchange, head } = send(p, request);
  const { status } = await head;
  const sink = new Collector();
  const error = await pipe(exchange, sink);
  if (error) throw error;
  return { status, body: sink.body.toString() };
}

/** Asserts `promise` rejects with an UpstreamError of `code`; returns it. */
async function failsWith(promise: Promise<unknown>, code: string): Promise<UpstreamError> {
  let caught: unknown;
  await promise.then(
    () => {},
    (error) => {
      caught = error;
    },
  );
  assert.ok(caught instanceof UpstreamError, `expected an UpstreamError ${code}, got ${String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  return caught;
}

// ---- Tests ------------------------------------------------------------------------------------

test(
  "sequential requests reuse one connection and carry method, path, host, headers and body",
  TIMEOUT,
  async (t) => {
    const seen: {
      method?: string;
      url?: string;
      host?: string;
      trace?: string;
      length?: string;
      body: string;
    }[] = [];
    const server = await httpServer(t, (req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        seen.push({
          method: req.method,
          url: req.url,
          host: req.headers.host,
          trace: req.headers["x-trace"] as string | undefined,
          length: req.headers["content-length"],
          body: Buffer.concat(chunks).toString(),
        });
        res.end(`answer ${seen.length}`);
      });
    });
    const p = pool(t, server.port);
    const first = await fetchText(p, get("/items/1?x=y", "x-trace: abc\r\n"));
    assert.deepEqual(first, { status: 200, body: "answer 1" });
    const second = await fetchText(p, {
      method: "PUT",
      path: "/items/2",
      headerLines: "x-trace: def\r\ncontent-type: text/plain\r\n",
      body: Buffer.from("the body"),
    });
    assert.deepEqual(second, { status: 200, body: "answer 2" });
    const third = await fetchText(p, {
      method: "POST",
      path: "/empty",
      headerLines: "",
      body: Buffer.alloc(0),
    });
    assert.deepEqual(third, { status: 200, body: "answer 3" });
    assert.deepEqual(seen, [
      {
        method: "GET",
        url: "/items/1?x=y",
        host: `127.0.0.1:${server.port}`,
        trace: "abc",
        length: undefined,
        body: "",
      },
      {
        method: "PUT",
        url: "/items/2",
        host: `127.0.0.1:${server.port}`,
        trace: "def",
        length: "8",
        body: "the body",
      },
      {
        method: "POST",
        url: "/empty",
        host: `127.0.0.1:${server.port}`,
        trace: undefined,
        length: "0",
        body: "",
      },
    ]);
    assert.equal(server.connections(), 1);
    assert.deepEqual(p.stats(), { open: 1, idle: 1, queued: 0, active: 0 });
  },
);

test("the request goes out as exactly the expected bytes", TIMEOUT, async (t) => {
  const server = await rawServer(t, (_req, socket) => socket.write(response("ok")));
  const p = pool(t, server.port);
  await fetchText(p, get("/a?b=1", "x-a: 1\r\nx-b: two\r\n"));
  await fetchText(p, { method: "POST", path: "/p", headerLines: "x-a: 1\r\n", body: Buffer.from("hello") });
  const host = `127.0.0.1:${server.port}`;
  assert.deepEqual(
    server.requests.map((r) => r.raw),
    [
      `GET /a?b=1 HTTP/1.1\r\nhost: ${host}\r\nx-a: 1\r\nx-b: two\r\n\r\n`,
      `POST /p HTTP/1.1\r\nhost: ${host}\r\nx-a: 1\r\ncontent-length: 5\r\n\r\nhello`,
    ],
  );
  assert.deepEqual(
    server.requests.map((r) => r.connection),
    [0, 0],
  );
});

test("a refused connection fails the head with ECONNREFUSED and notSent", TIMEOUT, async (t) => {
  const closed = createServer();
  closed.listen(0, "127.0.0.1");
  await once(closed, "listening");
  const { port } = closed.address() as { port: number };
  closed.close();
  await once(closed, "close");
  const p = pool(t, port);
  const error = await failsWith(send(p, get("/")).head, "ECONNREFUSED");
  assert.equal(error.notSent, true);
  await until(() => p.stats().open === 0, "the refused connection is dropped");
  assert.deepEqual(p.stats(), { open: 0, idle: 0, queued: 0, active: 0 });
});

test("no head in time fails with UPSTREAM_HEADERS_TIMEOUT and closes the connection", TIMEOUT, async (t) => {
  const server = await rawServer(t, () => {});
  const p = pool(t, server.port);
  const started = performance.now();
  const { head } = send(p, get("/slow"), { headersTimeoutMs: 150, bodyTimeoutMs: 5_000 });
  const error = await failsWith(head, "UPSTREAM_HEADERS_TIMEOUT");
  const elapsed = performance.now() - started;
  assert.ok(elapsed >= 140, `timed out after ${elapsed} ms, before its 150 ms headers timeout`);
  assert.equal(error.notSent, false);
  await server.closed(0);
  await until(() => p.stats().open === 0, "the pool drops the connection");
});

test("a body that stalls after the head destroys the sink with UPSTREAM_BODY_TIMEOUT", TIMEOUT, async (t) => {
  const server = await rawServer(t, (_req, socket) =>
    socket.write("HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc", "latin1"),
  );
  const p = pool(t, server.port);
  const { exchange, head } = send(p, get("/"), { headersTimeoutMs: 5_000, bodyTimeoutMs: 150 });
  assert.equal((await head).status, 200);
  const sink = new Collector();
  const error = await pipe(exchange, sink);
  assert.ok(error instanceof UpstreamError);
  assert.equal(error.code, "UPSTREAM_BODY_TIMEOUT");
  assert.equal(sink.destroyed, true);
  assert.equal(sink.errored, error);
  assert.equal(sink.body.toString(), "abc");
  await server.closed(0);
});

test("a slow but steady body is not cut by the body timeout", TIMEOUT, async (t) => {
  const server = await rawServer(t, (_req, socket) => {
    socket.write("HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\n", "latin1");
    let sent = 0;
    const timer = setInterval(() => {
      socket.write(String(sent));
      if (++sent === 6) clearInterval(timer);
    }, 60);
    socket.once("close", () => clearInterval(timer));
  });
  const p = pool(t, server.port);
  const { exchange, head } = send(p, get("/"), { headersTimeoutMs: 5_000, bodyTimeoutMs: 200 });
  await head;
  const sink = new Collector();
  assert.equal(await pipe(exchange, sink), undefined);
  assert.equal(sink.body.toString(), "012345");
});

test("an upstream that closes mid-body destroys the sink with an error", TIMEOUT, async (t) => {
  for (const how of ["end", "reset"] as const) {
    await t.test(how, async (t) => {
      const server = await rawServer(t, (_req, socket) =>
        socket.write("HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npartial", "latin1"),
      );
      const p = pool(t, server.port);
      const { exchange, head } = send(p, get("/"));
      await head;
      const sink = new Collector();
      const done = pipe(exchange, sink);
      await until(() => sink.chunks.length > 0, "the first body bytes reach the sink");
      // Only now, so the head cannot be lost to a reset.
      const upstream = server.sockets[0] as Socket;
      if (how === "end") upstream.end();
      else upstream.resetAndDestroy();
      const error = await done;
      assert.ok(error instanceof UpstreamError, String(error));
      assert.equal(error.code, how === "end" ? "UPSTREAM_CLOSED" : "ECONNRESET");
      assert.equal(error.notSent, false);
      assert.equal(sink.destroyed, true);
      assert.equal(sink.errored, error);
      assert.equal(sink.body.toString(), "partial");
      await until(() => p.stats().open === 0, "the pool drops the connection");
    });
  }
});

test("a close-delimited body ends cleanly when the upstream closes", TIMEOUT, async (t) => {
  const server = await rawServer(t, (_req, socket) => {
    socket.write("HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nuntil", "latin1");
    setImmediate(() => socket.end(" the end"));
  });
  const p = pool(t, server.port);
  const { exchange, head } = send(p, get("/"), { headersTimeoutMs: 5_000, bodyTimeoutMs: 1_000 });
  assert.equal((await head).keepAlive, false);
  const sink = new Collector();
  assert.equal(await pipe(exchange, sink), undefined);
  assert.equal(sink.body.toString(), "until the end");
  assert.equal(sink.writableFinished, true);
  assert.deepEqual(await fetchText(p, get("/again")), { status: 200, body: "until the end" });
  assert.equal(server.sockets.length, 2);
});

test("a response with Connection: close is not reused", TIMEOUT, async (t) => {
  const server = await rawServer(t, (req, socket) => {
    // The upstream leaves its side open: the pool must close it and open another for the next request.
    socket.write(response(req.path, req.path === "/1" ? "connection: close\r\n" : ""));
  });
  const p = pool(t, server.port);
  assert.equal((await fetchText(p, get("/1"))).body, "/1");
  await server.closed(0);
  assert.equal((await fetchText(p, get("/2"))).body, "/2");
  assert.equal((await fetchText(p, get("/3"))).body, "/3");
  assert.deepEqual(
    server.requests.map((r) => r.connection),
    [0, 1, 1],
  );
});

test("Keep-Alive: timeout=1 is not kept; a longer timeout is", TIMEOUT, async (t) => {
  const server = await rawServer(t, (req, socket) => {
    socket.write(
      response("ok", req.path === "/short" ? "keep-alive: timeout=1\r\n" : "keep-alive: timeout=5\r\n"),
    );
  });
  const p = pool(t, server.port);
  await fetchText(p, get("/short"));
  await server.closed(0);
  await fetchText(p, get("/long"));
  await fetchText(p, get("/long"));
  assert.deepEqual(
    server.requests.map((r) => r.connection),
    [0, 1, 1],
  );
});

test("an idle connection is closed after idleTimeoutMs", TIMEOUT, async (t) => {
  const server = await rawServer(t, (_req, socket) => socket.write(response("ok")));
  const p = pool(t, server.port, { idleTimeoutMs: 100 });
  await fetchText(p, get("/"));
  assert.equal(p.stats().idle, 1);
  await server.closed(0);
  await until(() => p.stats().open === 0, "the pool drops the connection");
  await fetchText(p, get("/"));
  assert.equal(server.sockets.length, 2);
});

test("maxConnections: 1 answers three concurrent requests in order on one connection", TIMEOUT, async (t) => {
  const server = await rawServer(t, (req, socket) => {
    // Answer a turn later, so the others really wait.
    setImmediate(() => socket.write(response(`answer to ${req.path}`)));
  });
  const p = pool(t, server.port, { maxConnections: 1 });
  const order: string[] = [];
  const all = ["/1", "/2", "/3"].map(async (path) => {
    const { body } = await fetchText(p, get(path));
    order.push(body);
    return body;
  });
  assert.deepEqual(p.stats(), { open: 1, idle: 0, queued: 2, active: 3 });
  assert.deepEqual(await Promise.all(all), ["answer to /1", "answer to /2", "answer to /3"]);
  assert.deepEqual(order, ["answer to /1", "answer to /2", "answer to /3"]);
  assert.equal(server.sockets.length, 1);
  assert.equal(server.maxOpen, 1);
  assert.deepEqual(p.stats(), { open: 1, idle: 1, queued: 0, active: 0 });
});

test("a queued request gets a new connection when the busy one closes", TIMEOUT, async (t) => {
  const server = await rawServer(t, (req, socket) => {
    if (req.path === "/drop") socket.destroy();
    else socket.write(response("ok"));
  });
  const p = pool(t, server.port, { maxConnections: 1 });
  const dropped = send(p, get("/drop"));
  const queued = fetchText(p, get("/next"));
  await failsWith(dropped.head, "UPSTREAM_CLOSED");
  assert.deepEqual(await queued, { status: 200, body: "ok" });
  assert.equal(server.maxOpen, 1);
});

test("a 5 MB body through a sink that pushes back often arrives intact", TIMEOUT, async (t) => {
  const payload = randomBytes(5 * 1024 * 1024);
  const server = await rawServer(t, (_req, socket) => socket.write(response(payload)));
  const p = pool(t, server.port);
  const { exchange, head } = send(p, get("/big"));
  await head;
  const slow = new Collector({ highWaterMark: 4 * 1024, slow: true });
  let refused = 0;
  let mostDrainListeners = 0;
  const sink: BodySink = {
    write(chunk) {
      const ok = slow.write(chunk);
      if (!ok) refused++;
      mostDrainListeners = Math.max(mostDrainListeners, slow.listenerCount("drain"));
      return ok;
    },
    end: () => slow.end(),
    destroy: (error) => slow.destroy(error),
    once: (event, listener) => slow.once(event, listener),
    get writableFinished() {
      return slow.writableFinished;
    },
  };
  assert.equal(await pipe(exchange, sink), undefined);
  if (!slow.writableFinished) await once(slow, "finish");
  const digest = (b: Buffer) => createHash("sha256").update(b).digest("hex");
  assert.equal(slow.body.length, payload.length);
  assert.equal(digest(slow.body), digest(payload));
  assert.ok(refused > 20, `write() returned false only ${refused} times`);
  assert.ok(mostDrainListeners <= 1, `${mostDrainListeners} drain listeners at once`);
  // The connection is good for the next request.
  await fetchText(p, get("/again"));
  assert.equal(server.sockets.length, 1);
});

test(
  "a chunked body of many small chunks waits for one drain at a time and arrives intact",
  TIMEOUT,
  async (t) => {
    const pieces = Array.from({ length: 4000 }, (_, i) => Buffer.from(`${i}:${"x".repeat(i % 50)};`));
    const payload = Buffer.concat(pieces);
    const server = await rawServer(t, (_req, socket) => {
      const framed = pieces
        .map((piece) => `${piece.length.toString(16)}\r\n${piece.toString()}\r\n`)
        .join("");
      socket.write(`HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n${framed}0\r\n\r\n`, "latin1");
    });
    const p = pool(t, server.port);
    const warnings: Error[] = [];
    const onWarning = (warning: Error) => warnings.push(warning);
    process.on("warning", onWarning);
    t.after(() => process.off("warning", onWarning));
    const { exchange, head } = send(p, get("/chunks"));
    await head;
    const slow = new Collector({ highWaterMark: 1024, slow: true });
    let mostDrainListeners = 0;
    const sink: BodySink = {
      write(chunk) {
        const ok = slow.write(chunk);
        mostDrainListeners = Math.max(mostDrainListeners, slow.listenerCount("drain"));
        return ok;
      },
      end: () => slow.end(),
      destroy: (error) => slow.destroy(error),
      once: (event, listener) => slow.once(event, listener),
      get writableFinished() {
        return slow.writableFinished;
      },
    };
    assert.equal(await pipe(exchange, sink), undefined);
    if (!slow.writableFinished) await once(slow, "finish");
    assert.ok(slow.body.equals(payload), "the decoded body differs");
    // One socket read holds hundreds of chunks, each written while the sink is full: one 'drain'
    // listener is enough, hundreds are a leak (and a MaxListenersExceededWarning).
    assert.ok(mostDrainListeners <= 1, `${mostDrainListeners} drain listeners at once`);
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(
      warnings.filter((w) => w.name === "MaxListenersExceededWarning").map((w) => w.message),
      [],
    );
  },
);

test(
  "abort() before the head fails it with UPSTREAM_ABORTED and closes the connection",
  TIMEOUT,
  async (t) => {
    const server = await rawServer(t, () => {});
    const p = pool(t, server.port);
    const { exchange, head } = send(p, get("/never"));
    await server.request(1);
    exchange.abort();
    exchange.abort(); // idempotent
    const error = await failsWith(head, "UPSTREAM_ABORTED");
    assert.equal(error.notSent, false);
    assert.equal(exchange.finished, true);
    await server.closed(0);
    await until(() => p.stats().open === 0, "the pool drops the connection");
  },
);

test("abort() of a queued request fails it without touching the busy connection", TIMEOUT, async (t) => {
  const server = await rawServer(t, (req, socket) => {
    if (req.path === "/first") setImmediate(() => socket.write(response("first")));
  });
  const p = pool(t, server.port, { maxConnections: 1 });
  const first = fetchText(p, get("/first"));
  const queued = send(p, get("/queued"));
  assert.equal(p.stats().queued, 1);
  queued.exchange.abort();
  await failsWith(queued.head, "UPSTREAM_ABORTED");
  assert.equal(p.stats().queued, 0);
  assert.deepEqual(await first, { status: 200, body: "first" });
  assert.deepEqual(
    server.requests.map((r) => r.path),
    ["/first"],
  );
});

test("abort() during the body closes the connection; the next request opens another", TIMEOUT, async (t) => {
  const server = await rawServer(t, (req, socket) => {
    if (req.path === "/stream")
      socket.write("HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\nfirst part", "latin1");
    else socket.write(response("ok"));
  });
  const p = pool(t, server.port);
  const { exchange, head } = send(p, get("/stream"));
  await head;
  const sink = new Collector();
  const done = pipe(exchange, sink);
  await until(() => sink.chunks.length > 0, "the first body bytes reach the sink");
  exchange.abort();
  const error = await done;
  assert.ok(error instanceof UpstreamError);
  assert.equal(error.code, "UPSTREAM_ABORTED");
  assert.equal(sink.destroyed, true);
  await server.closed(0);
  assert.deepEqual(await fetchText(p, get("/next")), { status: 200, body: "ok" });
  assert.deepEqual(
    server.requests.map((r) => r.connection),
    [0, 1],
  );
});

test("a sink that closes before the body ends aborts the exchange", TIMEOUT, async (t) => {
  const server = await rawServer(t, (_req, socket) =>
    socket.write("HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\nfirst part", "latin1"),
  );
  const p = pool(t, server.port);
  const { exchange, head } = send(p, get("/"));
  await head;
  const sink = new Collector();
  const done = pipe(exchange, sink);
  await until(() => sink.chunks.length > 0, "the first body bytes reach the sink");
  sink.destroy();
  const error = await done;
  assert.ok(error instanceof UpstreamError);
  assert.equal(error.code, "UPSTREAM_ABORTED");
  await server.closed(0);
});

/**
 * A sink whose write() always returns false and that never emits 'drain'; `close()` emits 'close'
 * the way a client's response does when the client goes away.
 */
function stuckSink(): BodySink & {
  written: Buffer[];
  ended: boolean;
  destroyed: Error | undefined;
  close(): void;
} {
  const closeListeners: (() => void)[] = [];
  const sink = {
    written: [] as Buffer[],
    ended: false,
    destroyed: undefined as Error | undefined,
    write(chunk: Buffer) {
      sink.written.push(chunk);
      return false;
    },
    end() {
      sink.ended = true;
    },
    destroy(error?: Error) {
      sink.destroyed = error;
    },
    once(event: "drain" | "close", listener: () => void) {
      if (event === "close") closeListeners.push(listener);
      return sink;
    },
    get writableFinished() {
      return false;
    },
    close() {
      for (const listener of closeListeners.splice(0)) listener();
    },
  };
  return sink;
}

test(
  "REGRESSION: a body read before pipe() into a sink that never drains leaves the connection usable",
  TIMEOUT,
  async (t) => {
    for (const order of ["next request first", "pipe first"] as const) {
      await t.test(order, async (t) => {
        const server = await rawServer(t, (req, socket) => socket.write(response(`body of ${req.path}`)));
        const p = pool(t, server.port, { maxConnections: 1 });
        const limits = { headersTimeoutMs: 2_000, bodyTimeoutMs: 2_000 };
        const first = send(p, get("/first"), limits);
        await first.head;
        // The whole response came in one read: the exchange completed and its connection went back
        // to the pool before anyone took the body.
        await until(() => first.exchange.finished && p.stats().idle === 1, "the first response is read");
        const sink = stuckSink();
        let next: Sent | undefined;
        if (order === "next request first") {
          // The next request takes the connection, so a pause from the old body would stop its answer.
          next = send(p, get("/second"), limits);
          assert.equal(p.stats().idle, 0);
        }
        assert.equal(await pipe(first.exchange, sink), undefined);
        assert.equal(Buffer.concat(sink.written).toString(), "body of /first");
        assert.equal(sink.ended, true);
        sink.close();
        next ??= send(p, get("/second"), limits);
        await next.head;
        const collector = new Collector();
        assert.equal(await pipe(next.exchange, collector), undefined);
        assert.equal(collector.body.toString(), "body of /second");
        assert.equal(server.sockets.length, 1);
      });
    }
  },
);

test(
  "a part of the body read before pipe() into a sink that never drains, then closes",
  TIMEOUT,
  async (t) => {
    const server = await rawServer(t, (req, socket) => {
      if (req.path === "/first") socket.write("HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nsome", "latin1");
      else socket.write(response(`body of ${req.path}`));
    });
    const p = pool(t, server.port, { maxConnections: 1 });
    const { exchange, head } = send(p, get("/first"));
    await head;
    const sink = stuckSink();
    const done = pipe(exchange, sink);
    assert.equal(Buffer.concat(sink.written).toString(), "some");
    // A slow client is not a stalled upstream: the exchange waits, and the next request queues.
    const next = fetchText(p, get("/second"));
    assert.equal(p.stats().queued, 1);
    sink.close(); // the client went away
    const error = await done;
    assert.ok(error instanceof UpstreamError);
    assert.equal(error.code, "UPSTREAM_ABORTED");
    assert.equal(sink.destroyed, error);
    assert.deepEqual(await next, { status: 200, body: "body of /second" });
    assert.deepEqual(
      server.requests.map((r) => r.connection),
      [0, 1],
    );
  },
);

/**
 * A server whose `/big` answer is a head and a 1 MB body written at once: on loopback the bytes are in
 * the client's receive queue (as much as fits) as soon as the write returns, so a socket that reads
 * while it should be paused shows within a few turns of the event loop.
 */
function bigBodyServer(t: TestContext, other: (req: RawRequest, socket: Socket) => void): Promise<RawServer> {
  return rawServer(t, (req, socket) => {
    if (req.path !== "/big") return other(req, socket);
    socket.write(response(Buffer.alloc(1024 * 1024, 0x62)));
  });
}

test("pipe() of a partly read body stops reading while the sink pushes back", TIMEOUT, async (t) => {
  const server = await bigBodyServer(t, () => {});
  const p = pool(t, server.port);
  const big = send(p, get("/big"));
  await big.head;
  const sink = stuckSink();
  big.exchange.pipe(sink);
  const written = sink.written.length;
  assert.ok(written >= 1);
  // The rest of the body is waiting; a socket read while the sink is full would write more of it.
  await turns(20);
  assert.equal(sink.written.length, written, "more of the body was written into a sink that never drained");
  big.exchange.abort();
});

test(
  "a late 'drain' from a finished exchange does not resume the connection under the next one",
  TIMEOUT,
  async (t) => {
    // /a's body comes in two reads, so its sink pushes back while the exchange runs and a 'drain'
    // listener is still registered when it ends. /big's sink never drains: its connection stays paused.
    let sendRest = (): void => assert.fail("/a was not asked for");
    const server = await bigBodyServer(t, (_req, socket) => {
      socket.write("HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\naaa", "latin1");
      sendRest = () => socket.write("bbb");
    });
    const p = pool(t, server.port, { maxConnections: 1 });
    const a = send(p, get("/a"));
    await a.head;
    const drainListeners: (() => void)[] = [];
    const aSink: BodySink & { body: Buffer[] } = {
      body: [],
      write(chunk) {
        aSink.body.push(chunk);
        return false;
      },
      end() {},
      destroy() {},
      once(event, listener) {
        if (event === "drain") drainListeners.push(listener);
        return aSink;
      },
      writableFinished: false,
    };
    const aDone = deferred<Error | undefined>();
    a.exchange.pipe(aSink, aDone.resolve);
    // "aaa" was written and pushed back; drain once and let "bbb" come, pushing back again.
    for (const listener of drainListeners.splice(0)) listener();
    sendRest();
    assert.equal(await aDone.promise, undefined);
    assert.equal(Buffer.concat(aSink.body).toString(), "aaabbb");
    assert.ok(drainListeners.length >= 1, "no 'drain' listener is left from /a");

    const big = send(p, get("/big"));
    await big.head;
    const bigSink = stuckSink();
    big.exchange.pipe(bigSink);
    await turns(20);
    const written = bigSink.written.length;
    // /a's sink drains now, long after /a ended.
    for (const listener of drainListeners.splice(0)) listener();
    await turns(20);
    assert.equal(bigSink.written.length, written, "more of /big was written into a sink that never drained");
    big.exchange.abort();
  },
);

test("discard() drops an unread body and keeps the connection", TIMEOUT, async (t) => {
  const big = Buffer.alloc(256 * 1024, 0x61);
  const server = await rawServer(t, (req, socket) =>
    socket.write(response(req.path === "/small" ? "small" : big)),
  );
  const p = pool(t, server.port, { maxConnections: 1 });
  // Discarded as soon as the head comes.
  const now = send(p, get("/big"));
  await now.head;
  now.exchange.discard();
  assert.deepEqual(await fetchText(p, get("/small")), { status: 200, body: "small" });
  // Discarded after the connection was paused holding the first body chunk.
  const later = send(p, get("/big"));
  await later.head;
  await new Promise((resolve) => setImmediate(resolve));
  later.exchange.discard();
  assert.deepEqual(await fetchText(p, get("/small")), { status: 200, body: "small" });
  assert.equal(server.sockets.length, 1);
  assert.deepEqual(p.stats(), { open: 1, idle: 1, queued: 0, active: 0 });
});

test(
  "close() fails in-flight and queued exchanges with UPSTREAM_POOL_CLOSED and closes the sockets",
  TIMEOUT,
  async (t) => {
    const server = await rawServer(t, (req, socket) => {
      if (req.path === "/body") socket.write("HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nsome", "latin1");
    });
    const p = pool(t, server.port, { maxConnections: 2 });
    const inBody = send(p, get("/body"));
    await inBody.head;
    const sink = new Collector();
    const bodyDone = pipe(inBody.exchange, sink);
    const waiting = send(p, get("/waiting"));
    const queued = send(p, get("/queued"));
    await server.request(2);
    assert.deepEqual(p.stats(), { open: 2, idle: 0, queued: 1, active: 3 });
    p.close();
    const bodyError = await bodyDone;
    assert.ok(bodyError instanceof UpstreamError);
    assert.equal(bodyError.code, "UPSTREAM_POOL_CLOSED");
    assert.equal(sink.destroyed, true);
    await failsWith(waiting.head, "UPSTREAM_POOL_CLOSED");
    await failsWith(queued.head, "UPSTREAM_POOL_CLOSED");
    await server.closed(0);
    await server.closed(1);
    assert.equal(server.sockets.length, 2);
    const after = await failsWith(send(p, get("/after")).head, "UPSTREAM_POOL_CLOSED");
    assert.equal(after.notSent, true);
    await until(() => p.stats().open === 0, "the pool drops its connections");
    assert.deepEqual(p.stats(), { open: 0, idle: 0, queued: 0, active: 0 });
  },
);

test("close() closes idle connections", TIMEOUT, async (t) => {
  const server = await rawServer(t, (_req, socket) => socket.write(response("ok")));
  const p = pool(t, server.port);
  await fetchText(p, get("/"));
  assert.equal(p.stats().idle, 1);
  p.close();
  await server.closed(0);
});

test(
  "a malformed response fails with UPSTREAM_PROTOCOL and the connection is not reused",
  TIMEOUT,
  async (t) => {
    const server = await rawServer(t, (req, socket) => {
      if (req.path === "/bad")
        socket.write("HTTP/1.1 200 OK\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n", "latin1");
      else socket.write(response("ok"));
    });
    const p = pool(t, server.port);
    await failsWith(send(p, get("/bad")).head, "UPSTREAM_PROTOCOL");
    await server.closed(0);
    assert.deepEqual(await fetchText(p, get("/good")), { status: 200, body: "ok" });
    assert.equal(server.sockets.length, 2);
  },
);

test("bytes past the end of a response make the connection unusable", TIMEOUT, async (t) => {
  const server = await rawServer(t, (req, socket) => {
    socket.write(Buffer.concat([response("ok"), Buffer.from(req.path === "/extra" ? "junk" : "")]));
  });
  const p = pool(t, server.port);
  assert.deepEqual(await fetchText(p, get("/extra")), { status: 200, body: "ok" });
  await server.closed(0);
  assert.deepEqual(await fetchText(p, get("/next")), { status: 200, body: "ok" });
  assert.equal(server.sockets.length, 2);
});

test("100 Continue before the response is skipped; a HEAD answer has no body", TIMEOUT, async (t) => {
  const server = await rawServer(t, (req, socket) => {
    if (req.method === "HEAD") socket.write("HTTP/1.1 200 OK\r\ncontent-length: 1234\r\n\r\n", "latin1");
    else socket.write(Buffer.concat([Buffer.from("HTTP/1.1 100 Continue\r\n\r\n"), response("ok")]));
  });
  const p = pool(t, server.port);
  assert.deepEqual(await fetchText(p, get("/")), { status: 200, body: "ok" });
  assert.deepEqual(await fetchText(p, { method: "HEAD", path: "/", headerLines: "", body: undefined }), {
    status: 200,
    body: "",
  });
  assert.deepEqual(await fetchText(p, get("/")), { status: 200, body: "ok" });
  assert.equal(server.sockets.length, 1);
});
