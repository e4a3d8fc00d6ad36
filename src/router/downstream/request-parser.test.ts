/**
 * The request parser faces untrusted clients: requests are fed whole, split at every byte and byte by
 * byte; pipelining and reset(); keep-alive and Expect; target forms; every refusal with its status
 * (smuggling, splitting, limits); and property tests over random valid requests, arbitrary bytes and
 * mutated requests.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { type RequestHead, type RequestLimits, RequestParseError, RequestParser } from "./request-parser.js";

interface Parsed {
  readonly head: RequestHead;
  readonly body: Buffer;
  readonly complete: boolean;
}

interface Outcome {
  readonly requests: Parsed[];
  /** Everything feed() handed back after the request completed (without `pipeline`); undefined if it never did. */
  readonly leftover: Buffer | undefined;
  /** Part of a further request has arrived. */
  readonly waiting: boolean;
}

interface Options {
  readonly limits?: RequestLimits;
  /** Like a connection: after each complete request, reset() and feed what was left. */
  readonly pipeline?: boolean;
}

/** Feeds `pieces` to a fresh parser, checking the order of events and what feed() returns. */
function parse(pieces: readonly Buffer[], options: Options = {}): Outcome {
  const requests: { head: RequestHead; chunks: Buffer[]; complete: boolean }[] = [];
  // A parser that loops without consuming input shows as more events than bytes: fail, don't hang.
  let events = 0;
  const budget = pieces.reduce((n, piece) => n + piece.length, 2);
  const current = () => {
    if (++events > budget) throw new Error(`more parser events than input bytes (${budget})`);
    const last = requests.at(-1);
    if (last === undefined || last.complete) throw new Error("an event outside a request");
    return last;
  };
  const parser = new RequestParser(
    {
      onHead: (head) => {
        if (++events > budget) throw new Error(`more parser events than input bytes (${budget})`);
        if (requests.at(-1)?.complete === false) throw new Error("a head before the last request completed");
        requests.push({ head, chunks: [], complete: false });
      },
      onBody: (chunk) => {
        if (chunk.length === 0) throw new Error("an empty body chunk");
        current().chunks.push(chunk);
      },
      onComplete: () => {
        current().complete = true;
      },
    },
    options.limits,
  );
  let leftover: Buffer[] | undefined;
  for (const piece of pieces) {
    let rest = parser.feed(piece);
    assert.equal(rest !== undefined, parser.done, "feed() returns bytes exactly when a request is complete");
    if (rest !== undefined && !options.pipeline) {
      leftover ??= [];
      leftover.push(Buffer.from(rest));
    } else
      while (rest !== undefined) {
        parser.reset();
        rest = rest.length > 0 ? parser.feed(rest) : undefined;
      }
  }
  return {
    requests: requests.map((r) => ({ head: r.head, body: Buffer.concat(r.chunks), complete: r.complete })),
    leftover: leftover && Buffer.concat(leftover),
    waiting: parser.inHead || parser.inBody,
  };
}

function bytes(text: string): Buffer {
  return Buffer.from(text, "latin1");
}

/** Short lists of test strings, separated by `|`. */
function list(items: string): string[] {
  return items.split("|");
}

function inPiecesOf(data: Buffer, size: number): Buffer[] {
  const pieces: Buffer[] = [];
  for (let i = 0; i < data.length; i += size) pieces.push(data.subarray(i, i + size));
  return pieces;
}

/** The whole input, every split into two pieces, and one byte at a time (1 KiB pieces when large). */
function* splits(data: Buffer): Generator<Buffer[]> {
  yield [data];
  if (data.length > 4096) {
    yield inPiecesOf(data, 1024);
    yield inPiecesOf(data, 1000);
    return;
  }
  for (let i = 0; i <= data.length; i++) yield [data.subarray(0, i), data.subarray(i)];
  yield inPiecesOf(data, 1);
}

const sizes = (pieces: readonly Buffer[]) => `pieces of ${pieces.map((p) => p.length).join("+")} bytes`;

/** Every split of `data` gives the same outcome as the whole, which is returned. */
function assertSplitInvariant(data: Buffer, options?: Options): Outcome {
  const whole = parse([data], options);
  for (const pieces of splits(data)) assert.deepEqual(parse(pieces, options), whole, sizes(pieces));
  return whole;
}

/** The one complete request that `text` holds, the same at every split. */
function one(text: string, limits?: RequestLimits): Parsed & { leftover: Buffer | undefined } {
  const outcome = assertSplitInvariant(bytes(text), { limits });
  const [request, ...others] = outcome.requests;
  assert.ok(request?.complete && others.length === 0, `not one complete request: ${JSON.stringify(text)}`);
  return { ...request, leftover: outcome.leftover };
}

/** The status a request is refused with, or "not refused" (accepted, or waiting for more). */
function statusOf(pieces: readonly Buffer[], limits?: RequestLimits): number | "not refused" {
  try {
    parse(pieces, { limits, pipeline: true });
    return "not refused";
  } catch (err) {
    if (err instanceof RequestParseError) return err.status;
    throw err;
  }
}

/** `data` is refused with `status` however it is split, as soon as it has all arrived. */
function assertRefused(data: string, status: number, limits?: RequestLimits): void {
  const label = JSON.stringify(data.slice(0, 100));
  for (const pieces of splits(bytes(data)))
    assert.equal(statusOf(pieces, limits), status, `${label} ${sizes(pieces)}`);
}

const HOST = "Host: example.com\r\n";

// ---- Accepted requests --------------------------------------------------------------------------

test("a GET with Host is the same whole, at every split and byte by byte", () => {
  const request = one(
    `GET /a/b?c=d&e HTTP/1.1\r\n${HOST}Accept: */*\r\nX-Empty:\r\nX-Ows: \t a b \t\r\n\r\n`,
  );
  assert.deepEqual(request.head, {
    method: "GET",
    target: "/a/b?c=d&e",
    http10: false,
    headers: ["Host", "example.com", "Accept", "*/*", "X-Empty", "", "X-Ows", "a b"],
    keepAlive: true,
    expectContinue: false,
    contentLength: -1,
    chunked: false,
  });
  assert.equal(request.body.length, 0);
  assert.deepEqual(request.leftover, Buffer.alloc(0));
});

test("feed() returns undefined until the request is complete, then the (empty) leftover", () => {
  for (const text of [
    `GET / HTTP/1.1\r\n${HOST}\r\n`,
    `POST / HTTP/1.1\r\n${HOST}Content-Length: 5\r\n\r\nhello`,
  ]) {
    const request = bytes(text);
    for (let i = 0; i < request.length; i++) {
      const parser = new RequestParser({ onHead: () => {}, onBody: () => {}, onComplete: () => {} });
      assert.equal(parser.feed(request.subarray(0, i)), undefined, `after ${i} bytes`);
      assert.equal(parser.done, false);
      assert.equal(parser.inHead || parser.inBody, i > 0);
      assert.deepEqual(parser.feed(request.subarray(i)), Buffer.alloc(0), `completed after ${i} bytes`);
      assert.equal(parser.done, true);
      // Once done, further bytes are handed straight back until reset().
      assert.deepEqual(parser.feed(bytes("next")), bytes("next"));
    }
  }
});

test("a pipelined request is returned exactly as leftover, and parses after reset()", () => {
  const first = `POST /one HTTP/1.1\r\n${HOST}Content-Length: 3\r\n\r\nabc`;
  const second = `GET /two HTTP/1.1\r\n${HOST}Connection: close\r\n\r\n`;
  const request = one(first + second);
  assert.equal(request.head.target, "/one");
  assert.equal(request.body.toString(), "abc");
  assert.deepEqual(request.leftover, bytes(second));

  const targets: string[] = [];
  const parser = new RequestParser({
    onHead: (h) => targets.push(h.target),
    onBody: () => {},
    onComplete() {},
  });
  const rest = parser.feed(bytes(first + second));
  assert.deepEqual(rest, bytes(second));
  parser.reset();
  assert.equal(parser.done, false);
  assert.deepEqual(parser.feed(rest ?? Buffer.alloc(0)), Buffer.alloc(0));
  assert.deepEqual(targets, ["/one", "/two"]);

  for (const pieces of splits(bytes(first + second + first))) {
    const outcome = parse(pieces, { pipeline: true });
    const seen = outcome.requests.map((r) => `${r.head.target} ${r.body} ${r.complete}`);
    assert.deepEqual(seen, ["/one abc true", "/two  true", "/one abc true"], sizes(pieces));
    assert.equal(outcome.waiting, false);
  }
});

test("empty lines before the request line are skipped, however they are split", () => {
  assert.equal(one(`\r\n\r\n\r\nGET /x HTTP/1.1\r\n${HOST}\r\n`).head.target, "/x");
  // Between pipelined requests too (clients add a CRLF after a POST body).
  const text = `POST / HTTP/1.1\r\n${HOST}Content-Length: 1\r\n\r\nx\r\n\r\nGET /y HTTP/1.1\r\n${HOST}\r\n`;
  for (const pieces of splits(bytes(text))) {
    const outcome = parse(pieces, { pipeline: true });
    assert.deepEqual(
      outcome.requests.map((r) => r.head.target),
      ["/", "/y"],
      sizes(pieces),
    );
  }
  // Only empty lines: nothing to parse yet, nothing buffered.
  for (const pieces of splits(bytes("\r\n\r\n\r\n")))
    assert.equal(parse(pieces).waiting, false, sizes(pieces));
});

test("a Content-Length body is read whole, and not complete before its last byte", () => {
  const text = `PUT /f HTTP/1.1\r\n${HOST}Content-Length: 26\r\n\r\nabcdefghijklmnopqrstuvwxyz`;
  const request = one(text);
  assert.equal(request.head.contentLength, 26);
  assert.equal(request.head.chunked, false);
  assert.equal(request.body.toString(), "abcdefghijklmnopqrstuvwxyz");
  for (let i = 0; i < text.length; i++)
    assert.equal(parse([bytes(text.slice(0, i))]).requests[0]?.complete ?? false, false, `after ${i} bytes`);
  const zero = one(`POST / HTTP/1.1\r\n${HOST}Content-Length: 0\r\n\r\n`);
  assert.equal(zero.head.contentLength, 0);
  assert.equal(zero.body.length, 0);
});

test("a chunked body with extensions and trailers is decoded the same at every pair of cuts", () => {
  const text =
    `POST /c HTTP/1.1\r\n${HOST}Transfer-Encoding: chunked\r\n\r\n` +
    '5;name=value\r\nhello\r\n1\r\n \r\nA ; q="a;b" ;flag\r\nchunked!!!\r\n0;last\r\nX-Sum: abc\r\nX-B: 1\r\n\r\n';
  const request = one(text);
  assert.equal(request.head.chunked, true);
  assert.equal(request.head.contentLength, -1);
  assert.deepEqual(request.head.headers, ["Host", "example.com", "Transfer-Encoding", "chunked"]);
  assert.equal(request.body.toString(), "hello chunked!!!");
  const data = bytes(text);
  const whole = parse([data]);
  for (let i = 0; i <= data.length; i += 3)
    for (let j = i; j <= data.length; j++) {
      const pieces = [data.subarray(0, i), data.subarray(i, j), data.subarray(j)];
      assert.deepEqual(parse(pieces), whole, `cut at ${i} and ${j}`);
    }
  assert.equal(one(`POST / HTTP/1.1\r\n${HOST}transfer-encoding: Chunked\r\n\r\n0\r\n\r\n`).body.length, 0);
  const unfinished = parse([bytes(`POST / HTTP/1.1\r\n${HOST}Transfer-Encoding: chunked\r\n\r\n0\r\n`)]);
  assert.equal(unfinished.requests[0]?.complete, false);
});

test("keep-alive follows the version and the Connection tokens", () => {
  // Connection values (several headers joined by `+`), then keep-alive with HTTP/1.1 and with HTTP/1.0.
  const cases: [string, boolean, boolean][] = [
    ["", true, false],
    ["close", false, false],
    ["Close", false, false],
    ["keep-alive", true, true],
    ["Keep-Alive", true, true],
    ["keep-alive, close", false, false],
    ["keep-alive, Upgrade", true, true],
    ["Upgrade", true, false],
    ["closed", true, false],
    ["keep-alive+close", false, false],
    ["close+keep-alive", false, false],
  ];
  for (const [connection, http11, http10] of cases)
    for (const [version, keepAlive] of [
      ["1.1", http11],
      ["1.0", http10],
    ] as const) {
      const headers = connection && `Connection: ${connection.split("+").join("\r\nConnection: ")}\r\n`;
      const { head } = one(`GET / HTTP/${version}\r\n${HOST}${headers}\r\n`);
      assert.equal(head.keepAlive, keepAlive, `HTTP/${version} with ${JSON.stringify(connection)}`);
      assert.equal(head.http10, version === "1.0");
    }
});

test("Expect: 100-continue is reported; any other expectation is refused with 417", () => {
  const put = (version: string, expect: string) =>
    `PUT / HTTP/${version}\r\n${HOST}Expect: ${expect}\r\nContent-Length: 2\r\n\r\nok`;
  assert.equal(one(put("1.1", "100-continue")).head.expectContinue, true);
  assert.equal(one(put("1.1", "100-Continue")).head.expectContinue, true);
  // HTTP/1.0 clients do not wait for 100 Continue.
  assert.equal(one(put("1.0", "100-continue")).head.expectContinue, false);
  assert.equal(one(`GET / HTTP/1.1\r\n${HOST}\r\n`).head.expectContinue, false);
  for (const expect of list("200-ok|100-continue, foo||continue")) assertRefused(put("1.1", expect), 417);
});

test("absolute-form targets are reduced to origin form; OPTIONS * is the only asterisk", () => {
  const cases = list(
    "/plain /plain|http://h:1/a?b /a?b|http://h /|http://h?q=1 /?q=1|HTTPS://E.COM:8443/x/y /x/y",
  );
  for (const [target, expected] of cases.map((c) => c.split(" ")))
    assert.equal(one(`GET ${target} HTTP/1.1\r\n${HOST}\r\n`).head.target, expected);
  assert.equal(one(`OPTIONS * HTTP/1.1\r\n${HOST}\r\n`).head.target, "*");
  for (const target of list("*|*x|example.com/a|ftp://h/a|http:///a|http:/h/a|a"))
    assertRefused(`GET ${target} HTTP/1.1\r\n${HOST}\r\n`, 400);
  assertRefused(`OPTIONS *x HTTP/1.1\r\n${HOST}\r\n`, 400);
});

test("CONNECT is refused with 501, whatever its target", () => {
  for (const target of list("example.com:443|/|http://h/|*"))
    assertRefused(`CONNECT ${target} HTTP/1.1\r\n${HOST}\r\n`, 501);
});

test("HTTP/1.0 needs no Host; HTTP/1.1 must have exactly one", () => {
  assert.equal(one("GET / HTTP/1.0\r\n\r\n").head.http10, true);
  assert.deepEqual(one("GET / HTTP/1.0\r\nAccept: x\r\n\r\n").head.headers, ["Accept", "x"]);
  assertRefused("GET / HTTP/1.1\r\n\r\n", 400);
  assertRefused("GET / HTTP/1.1\r\nAccept: x\r\n\r\n", 400);
  assertRefused(`GET / HTTP/1.1\r\n${HOST}${HOST}\r\n`, 400);
  assertRefused(`GET / HTTP/1.1\r\n${HOST}host: evil.example\r\n\r\n`, 400);
  assertRefused(`GET / HTTP/1.0\r\n${HOST}HOST: evil.example\r\n\r\n`, 400);
});

// ---- Refusals -------------------------------------------------------------------------------------

test("bad request lines are refused with 400, unknown HTTP versions with 505", () => {
  const lines = list(
    "GET|GET /|GET / |GET  / HTTP/1.1|GET /  HTTP/1.1| GET / HTTP/1.1|GET / HTTP/1.1 |GET\t/ HTTP/1.1|" +
      "GET /\tHTTP/1.1|GET / http/1.1|GET / HTTP/1.x|GET / HTTP/1.10|GET / HTTPS/1.1|GET / HTTP/2|" +
      "GET / HTTP/1||/ HTTP/1.1|GET / HTTP/1.1 extra|GET / HTTP/1.1\0",
  );
  for (const line of lines) assertRefused(`${line}\r\n${HOST}\r\n`, 400);
  for (const version of list("HTTP/2.0|HTTP/0.9|HTTP/3.0|HTTP/1.2"))
    assertRefused(`GET / ${version}\r\n${HOST}\r\n`, 505);
});

test("methods must be tokens; targets must be visible ASCII", () => {
  for (const method of list('G(T|GE\x7fT|G\xc9T|GET,|G\0T|G"T|G/T|G:T|G[T'))
    assertRefused(`${method} / HTTP/1.1\r\n${HOST}\r\n`, 400);
  for (const target of list("/a\x01|/a\x7f|/caf\xe9|/a\0b|/\x1b|/a\rb|/a\nb|/\xff|/a b"))
    assertRefused(`GET ${target} HTTP/1.1\r\n${HOST}\r\n`, 400);
  // Unusual but valid token methods pass through.
  assert.equal(one(`M-SEARCH! / HTTP/1.1\r\n${HOST}\r\n`).head.method, "M-SEARCH!");
});

test("obs-fold, whitespace before a colon, and bad or empty header names are refused with 400", () => {
  const lines = [
    ...list("X-A: one\r\n two|X-A: one\r\n\ttwo|X-A: one\r\n two: three"),
    ...list("Content-Length : 5|Host\t: a"),
    ...list('X(A): 1|X A: 1|X\x80: 1|X"A: 1|: empty name|:|no colon'),
  ];
  for (const line of lines) assertRefused(`GET / HTTP/1.1\r\n${HOST}${line}\r\n\r\n`, 400);
  // Whitespace between the request line and the first field.
  assertRefused(`GET / HTTP/1.1\r\n X-Lead: a\r\n${HOST}\r\n`, 400);
  // obs-text in a value is allowed.
  assert.deepEqual(one(`GET / HTTP/1.1\r\n${HOST}X-A: caf\xe9\r\n\r\n`).head.headers.slice(2), [
    "X-A",
    "caf\xe9",
  ]);
});

test("NUL, CR, bare LF and other controls in a value are refused, so no header hides behind them", () => {
  for (const control of list("\0|\r|\n|\x01|\x1b|\x7f|\v|\f")) {
    assertRefused(`GET / HTTP/1.1\r\n${HOST}X-A: a${control}b\r\n\r\n`, 400);
    assertRefused(`GET / HTTP/1.1\r\n${HOST}X-A: ab${control}\r\n\r\n`, 400);
  }
  assertRefused(`POST / HTTP/1.1\r\n${HOST}X-A: a\nContent-Length: 5\r\n\r\nhello`, 400);
  assertRefused(`POST / HTTP/1.1\r\n${HOST}X-A: a\rTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`, 400);
  assertRefused("GET / HTTP/1.1\nHost: a\r\n\r\n", 400);
  assertRefused("GET / HTTP/1.1\r\r\nHost: a\r\n\r\n", 400);
});

test("bare-LF line endings are refused at once, without waiting for a CRLF CRLF", () => {
  // assertRefused feeds nothing after these bytes: a parser waiting for more would show "not refused".
  for (const text of list(
    "GET / HTTP/1.1\nHost: a\n\n|GET / HTTP/1.1\r\nHost: a\n\n|GET / HTTP/1.1\r\nHost: a\r\n\n",
  ))
    assertRefused(text, 400);
});

test("Transfer-Encoding with Content-Length is refused with 400, in either order", () => {
  const te = "Transfer-Encoding: chunked\r\n";
  assertRefused(`POST / HTTP/1.1\r\n${HOST}${te}Content-Length: 5\r\n\r\n5\r\nhello\r\n0\r\n\r\n`, 400);
  assertRefused(`POST / HTTP/1.1\r\n${HOST}Content-Length: 5\r\n${te}\r\n5\r\nhello\r\n0\r\n\r\n`, 400);
  assertRefused(`POST / HTTP/1.1\r\n${HOST}Content-Length: 0\r\n${te}\r\n0\r\n\r\n`, 400);
  assertRefused(`POST / HTTP/1.1\r\n${HOST}Content-Length: 0\r\nTransfer-Encoding: gzip\r\n\r\n`, 400);
});

test("differing or malformed Content-Lengths are refused; identical repeats are accepted", () => {
  const post = (headers: string) => `POST / HTTP/1.1\r\n${HOST}${headers}\r\nhello`;
  assertRefused(post("Content-Length: 5\r\nContent-Length: 6\r\n"), 400);
  assertRefused(post("Content-Length: 5, 6\r\n"), 400);
  assertRefused(post("Content-Length: 5\r\nContent-Length: 5, 6\r\n"), 400);
  for (const bad of list("-1|+5|0x5|5a||5,|,5|1234567890123456|5 5|5.0|1e3|\xb5|5\0|\u0665"))
    assertRefused(post(`Content-Length: ${bad}\r\n`), 400);
  const same =
    "Content-Length: 5, 5|Content-Length: 5\r\ncontent-length: 5|Content-Length: 5,5\r\nContent-Length: 5";
  for (const headers of list(`${same}|Content-Length: \t5 |Content-Length: 005`)) {
    const request = one(post(`${headers}\r\n`));
    assert.equal(request.head.contentLength, 5, headers);
    assert.equal(request.body.toString(), "hello", headers);
  }
});

test("a transfer coding other than chunked gets 501; chunked in HTTP/1.0 gets 400", () => {
  for (const coding of list(
    "gzip, chunked|identity|gzip|chunked, gzip|chunked, chunked||chunked;q=1|chunked x",
  ))
    assertRefused(`POST / HTTP/1.1\r\n${HOST}Transfer-Encoding: ${coding}\r\n\r\n0\r\n\r\n`, 501);
  const twice = "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n";
  assertRefused(`POST / HTTP/1.1\r\n${HOST}${twice}\r\n0\r\n\r\n`, 501);
  assertRefused("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 400);
});

test("a head over maxHeadBytes gets 431, whether its end never comes or comes too late", () => {
  const limits = { maxHeadBytes: 64 };
  const start = "GET / HTTP/1.1\r\nHost: a\r\nX: ";
  const fits = `${start}${"a".repeat(64 - start.length - 4)}\r\n\r\n`;
  assert.equal(fits.length, 64);
  assert.equal(one(fits, limits).complete, true);
  assertRefused(`${start}${"a".repeat(64 - start.length - 3)}\r\n\r\n`, 431, limits);
  // 64 bytes without the end may still become a head that fits; the 65th cannot.
  assert.equal(statusOf([bytes(`${start}${"a".repeat(64 - start.length)}`)], limits), "not refused");
  assertRefused(`${start}${"a".repeat(65 - start.length)}`, 431, limits);
  assertRefused(`${start}${"a".repeat(10_000)}`, 431, limits);
  // The default is 16 KiB.
  const big = "GET / HTTP/1.1\r\nHost: a\r\nX-Big: ";
  assert.equal(one(`${big}${"a".repeat(16 * 1024 - big.length - 4)}\r\n\r\n`).complete, true);
  assertRefused(`${big}${"a".repeat(16 * 1024)}\r\n\r\n`, 431);
  assertRefused(`${big}${"a".repeat(16 * 1024)}`, 431);
});

test("more than maxHeaders fields get 431", () => {
  const fields = (n: number) => Array.from({ length: n }, (_, i) => `X-${i}: ${i}\r\n`).join("");
  assert.equal(parse([bytes(`GET / HTTP/1.1\r\n${HOST}${fields(255)}\r\n`)]).requests[0]?.complete, true);
  assertRefused(`GET / HTTP/1.1\r\n${HOST}${fields(256)}\r\n`, 431);
  const limits = { maxHeaders: 3 };
  assert.equal(one(`GET / HTTP/1.1\r\n${HOST}${fields(2)}\r\n`, limits).head.headers.length, 6);
  assertRefused(`GET / HTTP/1.1\r\n${HOST}${fields(3)}\r\n`, 431, limits);
});

test("bad chunk size lines are refused with 400", () => {
  const head = `POST / HTTP/1.1\r\n${HOST}Transfer-Encoding: chunked\r\n\r\n`;
  // Also 13 hex digits, controls in an extension, a bare CR or LF, and a size line over 1 KiB.
  const lines = list("zz|-5|+5|0x5| 5||1000000000000|5;ext=a\0b|5;ext\rx|5\n|5\r|5\v|5\xa0");
  for (const line of [...lines, `5;${"x".repeat(2048)}`])
    assertRefused(`${head}${line}\r\nhello\r\n0\r\n\r\n`, 400);
  // Twelve hex digits and whitespace before an extension are fine.
  assert.equal(one(`${head}000000000005 \t;x\r\nhello\r\n0\r\n\r\n`).body.toString(), "hello");
});

test("chunk data not followed by CRLF, and malformed trailers, are refused with 400", () => {
  const head = `POST / HTTP/1.1\r\n${HOST}Transfer-Encoding: chunked\r\n\r\n`;
  for (const rest of list("hello!\r\n0|hello\n0|hello\r0|helloXY0"))
    assertRefused(`${head}5\r\n${rest}\r\n\r\n`, 400);
  const trailers = list("X-A: a\0b|X-A: a\r\n folded|no colon|X A: b");
  for (const trailer of [...trailers, `X-Big: ${"a".repeat(20 * 1024)}`])
    assertRefused(`${head}0\r\n${trailer}\r\n\r\n`, 400);
});

// ---- Properties -----------------------------------------------------------------------------------

const TCHAR = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
const token = (maxLength: number) => fc.string({ unit: fc.constantFrom(...TCHAR), minLength: 1, maxLength });
const path = fc.string({ unit: fc.constantFrom(..."abzAZ09-._~!$&'()*+,;=:@/%?"), maxLength: 24 });
const valueChar = fc.oneof(
  fc.integer({ min: 0x21, max: 0x7e }),
  fc.constantFrom(0x20, 0x09),
  fc.integer({ min: 0x80, max: 0xff }),
);
/** A field value without surrounding whitespace: visible ASCII, inner spaces and tabs, obs-text. */
const fieldValue = fc
  .string({ unit: valueChar.map((c) => String.fromCharCode(c)), maxLength: 30 })
  .map((v) => v.replace(/^[ \t]+|[ \t]+$/g, ""));
const ows = fc.constantFrom("", " ", "\t", " \t ");

interface Generated {
  readonly wire: Buffer;
  readonly expected: Parsed;
}

/** A valid request (leading empty lines, OWS, absolute form, CL or chunked body) and what it parses to. */
const validRequest: fc.Arbitrary<Generated> = fc
  .record({
    empties: fc.nat({ max: 2 }),
    method: token(8).filter((m) => m !== "CONNECT"),
    absolute: fc.boolean(),
    path,
    http10: fc.boolean(),
    fields: fc.array(fc.tuple(token(12), fieldValue, ows, ows), { maxLength: 6 }),
    hostAt: fc.nat(),
    connection: fc.constantFrom(undefined, "close", "keep-alive", "keep-alive, Upgrade", "Upgrade"),
    framing: fc.constantFrom("none", "length", "chunked"),
    body: fc.uint8Array({ maxLength: 200 }),
    sizes: fc.array(fc.integer({ min: 1, max: 80 }), { minLength: 1, maxLength: 6 }),
    extensions: fc.boolean(),
  })
  .map((r): Generated => {
    const framing = r.http10 && r.framing === "chunked" ? "length" : r.framing;
    const fields: [string, string, string, string][] = r.fields.map(([n, v, a, b]) => [`X-${n}`, v, a, b]);
    fields.splice(r.hostAt % (fields.length + 1), 0, ["Host", "example.com:8080", " ", ""]);
    if (r.connection !== undefined) fields.push(["Connection", r.connection, " ", ""]);
    const data = Buffer.from(r.body);
    if (framing === "length") fields.push(["Content-Length", String(data.length), "", " "]);
    if (framing === "chunked") fields.push(["transfer-encoding", "chunked", "\t", ""]);
    const target = `/${r.path}`;
    const line = `${r.method} ${r.absolute ? `http://example.com:8080${target}` : target} HTTP/1.${r.http10 ? 0 : 1}`;
    const head = fields.map(([n, v, a, b]) => `${n}:${a}${v}${b}\r\n`).join("");
    const parts = [bytes(`${"\r\n".repeat(r.empties)}${line}\r\n${head}\r\n`)];
    if (framing === "length") parts.push(data);
    if (framing === "chunked") {
      for (let at = 0, k = 0; at < data.length; k++) {
        const size = Math.min(r.sizes[k % r.sizes.length] ?? 1, data.length - at);
        const ext = r.extensions ? `;k=${k};q="a b"` : "";
        parts.push(bytes(`${size.toString(16)}${ext}\r\n`), data.subarray(at, at + size), bytes("\r\n"));
        at += size;
      }
      parts.push(bytes(r.extensions ? "0;end\r\nX-Trailer: t\r\n\r\n" : "0\r\n\r\n"));
    }
    const tokens = (r.connection ?? "").toLowerCase().split(/\s*,\s*/);
    const expected: RequestHead = {
      method: r.method,
      target,
      http10: r.http10,
      headers: fields.flatMap((field) => field.slice(0, 2)),
      keepAlive: !tokens.includes("close") && (!r.http10 || tokens.includes("keep-alive")),
      expectContinue: false,
      contentLength: framing === "length" ? data.length : -1,
      chunked: framing === "chunked",
    };
    const body = framing === "none" ? Buffer.alloc(0) : data;
    return { wire: Buffer.concat(parts), expected: { head: expected, body, complete: true } };
  });

/** `data` cut at the given points (taken modulo its length). */
function cut(data: Buffer, points: readonly number[]): Buffer[] {
  const at = [...new Set(points.map((p) => p % (data.length + 1)))].sort((a, b) => a - b);
  return [0, ...at].map((from, i) => data.subarray(from, at[i] ?? data.length));
}

test("property: pipelined valid requests parse to their heads and bodies, however they are cut", () => {
  fc.assert(
    fc.property(
      fc.array(validRequest, { minLength: 1, maxLength: 3 }),
      fc.array(fc.nat(), { maxLength: 16 }),
      (requests, points) => {
        const wire = Buffer.concat(requests.map((r) => r.wire));
        for (const pieces of [[wire], cut(wire, points), inPiecesOf(wire, 1)]) {
          const outcome = parse(pieces, { pipeline: true });
          assert.deepEqual(
            outcome.requests,
            requests.map((r) => r.expected),
          );
          assert.equal(outcome.waiting, false);
        }
      },
    ),
    { numRuns: 1000 },
  );
});

/** What the parser made of some bytes; a RequestParseError with a known status is the only way to fail. */
function judge(pieces: readonly Buffer[]): string {
  try {
    const outcome = parse(pieces, { pipeline: true });
    return JSON.stringify({
      ...outcome,
      requests: outcome.requests.map((r) => ({ ...r, body: r.body.toString("hex") })),
    });
  } catch (err) {
    if (err instanceof RequestParseError && [400, 417, 431, 501, 505].includes(err.status)) return "refused";
    throw err;
  }
}

/** The same verdict whole, cut at `points`, and byte by byte. */
function assertJudgedAlike(data: Buffer, points: readonly number[]): void {
  const whole = judge([data]);
  assert.equal(judge(cut(data, points)), whole);
  assert.equal(judge(inPiecesOf(data, 1)), whole);
}

/** Requests from likely pieces, mostly well formed, so inputs get past the request line. */
const grammatical = fc
  .tuple(
    fc.constantFrom("", "\r\n", "\r", "\n"),
    fc.constantFrom(
      ...list("GET / HTTP/1.1|POST /p HTTP/1.0|OPTIONS * HTTP/1.1|GET http://h HTTP/1.1|GET / HTTP/2.0"),
    ),
    fc.array(
      fc
        .tuple(
          fc.constantFrom(...list("Host|Content-Length|Transfer-Encoding|Connection|Expect|X-A|host | X|")),
          fc.array(fc.constantFrom(...list("5|0|chunked|gzip|close|100-continue|, | |\t|\0|\r|\n")), {
            maxLength: 3,
          }),
          fc.constantFrom("\r\n", "\r\n", "\r\n", "\n", "\r"),
        )
        .map(([name, value, eol]) => `${name}: ${value.join("")}${eol}`),
      { maxLength: 6 },
    ),
    fc.array(
      fc.constantFrom(...list("5\r\nhello\r\n|3;x=1\r\nabc\r\n|0\r\n\r\n|0\r\n|\r\n|\n|hello|X: y\r\n")),
      {
        maxLength: 8,
      },
    ),
  )
  .map(([lead, line, headers, body]) => bytes(`${lead}${line}\r\n${headers.join("")}\r\n${body.join("")}`));

const anyBytes = fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b));

test("property: arbitrary bytes only ever raise RequestParseError, never loop, and splits agree", () => {
  fc.assert(
    fc.property(fc.oneof(anyBytes, grammatical), fc.array(fc.nat(), { maxLength: 10 }), assertJudgedAlike),
    {
      numRuns: 5000,
    },
  );
});

const mutation = fc.record({
  kind: fc.constantFrom("replace", "insert", "delete"),
  at: fc.nat(),
  byte: fc.oneof(fc.constantFrom(0, 9, 10, 13, 32, 44, 48, 58, 59), fc.integer({ min: 0, max: 255 })),
});

test("property: a mutated valid request either parses or raises RequestParseError, at any split", () => {
  fc.assert(
    fc.property(
      fc.array(validRequest, { minLength: 1, maxLength: 2 }),
      fc.array(mutation, { minLength: 1, maxLength: 4 }),
      fc.array(fc.nat(), { maxLength: 10 }),
      (requests, mutations, points) => {
        let data = Buffer.concat(requests.map((r) => r.wire));
        for (const { kind, at: to, byte } of mutations) {
          const at = to % (data.length + 1);
          const after = kind === "insert" ? at : at + 1;
          const inserted = kind === "delete" ? [] : [Buffer.of(byte)];
          data = Buffer.concat([data.subarray(0, at), ...inserted, data.subarray(after)]);
        }
        assertJudgedAlike(data, points);
      },
    ),
    { numRuns: 3000 },
  );
});
