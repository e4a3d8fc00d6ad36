/**
 * The response parser, fed whole responses, every split of them, and byte by byte: framing, the
 * refusals that guard against smuggling, keep-alive, and property tests over arbitrary bodies,
 * arbitrary bytes and mutated responses.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { MAX_HEAD_BYTES, type ResponseHead, ResponseParseError, ResponseParser } from "./parser.js";

interface Outcome {
  readonly heads: ResponseHead[];
  readonly body: Buffer;
  readonly completions: number;
  readonly done: boolean;
  readonly reusable: boolean;
}

/** Feeds `pieces` to a fresh parser readied for `method`, then `end()` when asked. */
function parse(pieces: readonly Buffer[], options: { method?: string; end?: boolean } = {}): Outcome {
  const heads: ResponseHead[] = [];
  // Body chunks are kept as handed out (not copied), so a view into a buffer the parser reuses shows.
  const chunks: Buffer[] = [];
  let completions = 0;
  // A parser that loops without consuming input shows as empty chunks or more events than bytes;
  // failing on them turns such a hang into an error here.
  let events = 0;
  const budget = pieces.reduce((n, piece) => n + piece.length, 2);
  const count = (): void => {
    if (++events > budget) throw new Error(`more parser events than input bytes (${budget})`);
  };
  const parser = new ResponseParser({
    onHead: (head) => {
      count();
      heads.push(head);
    },
    onBody: (chunk) => {
      count();
      if (chunk.length === 0) throw new Error("an empty body chunk");
      chunks.push(chunk);
    },
    onComplete: () => {
      count();
      completions++;
    },
  });
  parser.start(options.method ?? "GET");
  for (const piece of pieces) parser.feed(piece);
  if (options.end) parser.end();
  return { heads, body: Buffer.concat(chunks), completions, done: parser.done, reusable: parser.reusable };
}

function bytes(text: string): Buffer {
  return Buffer.from(text, "latin1");
}

function byteByByte(data: Buffer): Buffer[] {
  return Array.from(data, (_, i) => data.subarray(i, i + 1));
}

/** The whole input, then every split into two pieces, then one byte at a time. */
function* splits(data: Buffer): Generator<Buffer[]> {
  yield [data];
  for (let i = 0; i <= data.length; i++) yield [data.subarray(0, i), data.subarray(i)];
  yield byteByByte(data);
}

function isProtocolError(error: unknown): boolean {
  return error instanceof ResponseParseError && error.code === "UPSTREAM_PROTOCOL";
}

/** `data` is refused while it is fed, whole and byte by byte. */
function assertRefused(data: string | Buffer, method = "GET"): void {
  const input = typeof data === "string" ? bytes(data) : data;
  for (const pieces of [[input], byteByByte(input)])
    assert.throws(
      () => parse(pieces, { method }),
      isProtocolError,
      JSON.stringify(input.toString("latin1").slice(0, 160)),
    );
}

/** Every split of `data` gives the same outcome as the whole, which is returned. */
function assertSplitInvariant(data: Buffer, options: { method?: string; end?: boolean } = {}): Outcome {
  const whole = parse([data], options);
  for (const pieces of splits(data)) {
    const split = parse(pieces, options);
    assert.deepEqual(split, whole, `split into pieces of ${pieces.map((p) => p.length).join("+")} bytes`);
  }
  return whole;
}

test("a Content-Length response is the same whole, split at every byte and byte by byte", () => {
  const response = bytes(
    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Empty:\r\nX-Spaces: \t a b \t\r\nContent-Length: 26\r\n\r\nabcdefghijklmnopqrstuvwxyz",
  );
  const outcome = assertSplitInvariant(response);
  assert.equal(outcome.heads.length, 1);
  assert.equal(outcome.heads[0]?.status, 200);
  assert.deepEqual(outcome.heads[0]?.headers, [
    "Content-Type",
    "text/plain",
    "X-Empty",
    "",
    "X-Spaces",
    "a b",
    "Content-Length",
    "26",
  ]);
  assert.equal(outcome.body.toString(), "abcdefghijklmnopqrstuvwxyz");
  assert.equal(outcome.completions, 1);
  assert.equal(outcome.done, true);
  assert.equal(outcome.reusable, true);
});

test("a Content-Length body is not complete until its last byte", () => {
  const response = bytes("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
  for (let i = 0; i < response.length; i++) {
    const outcome = parse([response.subarray(0, i)]);
    assert.equal(outcome.done, false, `done after ${i} bytes`);
    assert.equal(outcome.completions, 0);
  }
});

test("a chunked response with extensions and trailers decodes the same at every split", () => {
  const response = bytes(
    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" +
      "5;name=value\r\nhello\r\n" +
      "1\r\n \r\n" +
      'A ; quoted="a;b" ;flag\r\nchunked!!!\r\n' +
      "00b\r\n is decoded\r\n" +
      "0;last\r\nX-Checksum: abc\r\nX-Other: 1\r\n\r\n",
  );
  const outcome = assertSplitInvariant(response);
  assert.equal(outcome.heads[0]?.status, 200);
  assert.deepEqual(outcome.heads[0]?.headers, ["Transfer-Encoding", "chunked"]);
  assert.equal(outcome.body.toString(), "hello chunked!!! is decoded");
  assert.equal(outcome.completions, 1);
  assert.equal(outcome.done, true);
  assert.equal(outcome.reusable, true);

  // Three pieces at every pair of cut points: the framing state carries across every boundary.
  for (let i = 0; i <= response.length; i++)
    for (let j = i; j <= response.length; j++) {
      const pieces = [response.subarray(0, i), response.subarray(i, j), response.subarray(j)];
      assert.deepEqual(parse(pieces), outcome, `cut at ${i} and ${j}`);
    }
});

test("a chunked response without trailers, and an empty one, complete at their final CRLF", () => {
  const plain = assertSplitInvariant(
    bytes("HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"),
  );
  assert.equal(plain.body.toString(), "abc");
  assert.equal(plain.reusable, true);
  const empty = assertSplitInvariant(bytes("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"));
  assert.equal(empty.body.length, 0);
  assert.equal(empty.done, true);
  const unfinished = parse([bytes("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n")]);
  assert.equal(unfinished.done, false);
});

test("a close-delimited body completes only on end() and is not reusable", () => {
  const response = bytes("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the connection closes");
  const open = assertSplitInvariant(response);
  assert.equal(open.heads[0]?.keepAlive, false);
  assert.equal(open.body.toString(), "until the connection closes");
  assert.equal(open.completions, 0);
  assert.equal(open.done, false);
  assert.equal(open.reusable, false);

  const closed = assertSplitInvariant(response, { end: true });
  assert.equal(closed.body.toString(), "until the connection closes");
  assert.equal(closed.completions, 1);
  assert.equal(closed.done, true);
  assert.equal(closed.reusable, false);

  const empty = parse([bytes("HTTP/1.1 200 OK\r\n\r\n")], { end: true });
  assert.equal(empty.done, true);
  assert.equal(empty.body.length, 0);
});

test("HEAD, 204 and 304 answers have no body, whatever their Content-Length says", () => {
  const cases: [string, string, number][] = [
    ["HEAD", "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n", 200],
    ["HEAD", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", 200],
    ["GET", "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n", 204],
    ["GET", 'HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\nETag: "x"\r\n\r\n', 304],
    ["GET", "HTTP/1.1 204 No Content\r\n\r\n", 204],
  ];
  for (const [method, text, status] of cases) {
    const outcome = assertSplitInvariant(bytes(text), { method });
    assert.equal(outcome.heads[0]?.status, status, text);
    assert.equal(outcome.body.length, 0, text);
    assert.equal(outcome.completions, 1, text);
    assert.equal(outcome.reusable, true, text);
  }
  // The next bytes are not taken for a body: they were not asked for, so the connection is not reused.
  const extra = parse([bytes("HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nhello")]);
  assert.equal(extra.body.length, 0);
  assert.equal(extra.done, true);
  assert.equal(extra.reusable, false);
});

test("100 Continue and 103 Early Hints are skipped before the real response", () => {
  const response = bytes(
    "HTTP/1.1 100 Continue\r\n\r\n" +
      "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n" +
      "HTTP/1.1 100 Continue\r\n\r\n" +
      "HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok",
  );
  const outcome = assertSplitInvariant(response);
  assert.equal(outcome.heads.length, 1);
  assert.equal(outcome.heads[0]?.status, 201);
  assert.deepEqual(outcome.heads[0]?.headers, ["Content-Length", "2"]);
  assert.equal(outcome.body.toString(), "ok");
  assert.equal(outcome.reusable, true);
  // An interim head is checked like any other.
  assertRefused("HTTP/1.1 103 Early Hints\r\nLink: a\0b\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
});

test("101 Switching Protocols is refused", () => {
  assertRefused("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n");
});

test("Transfer-Encoding with Content-Length is refused, in either order", () => {
  assertRefused(
    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
  );
  assertRefused(
    "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
  );
  assertRefused("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n");
});

test("differing Content-Lengths are refused; a repeated identical one is accepted", () => {
  assertRefused("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!");
  assertRefused("HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\nhello!");
  assertRefused("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5, 6\r\n\r\nhello!");
  for (const bad of ["-1", "+5", "0x5", "5a", "", "5,", "1234567890123456", "5 5"])
    assertRefused(`HTTP/1.1 200 OK\r\nContent-Length: ${bad}\r\n\r\nhello`);

  for (const text of [
    "HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\nhello",
    "HTTP/1.1 200 OK\r\nContent-Length: 5\r\ncontent-length: 5\r\n\r\nhello",
    "HTTP/1.1 200 OK\r\nContent-Length: 5,5\r\nContent-Length: 5\r\n\r\nhello",
  ]) {
    const outcome = parse([bytes(text)]);
    assert.equal(outcome.body.toString(), "hello", text);
    assert.equal(outcome.reusable, true, text);
  }
});

test("obsolete line folding is refused", () => {
  assertRefused("HTTP/1.1 200 OK\r\nX-A: one\r\n two\r\nContent-Length: 0\r\n\r\n");
  assertRefused("HTTP/1.1 200 OK\r\nX-A: one\r\n\ttwo\r\nContent-Length: 0\r\n\r\n");
  assertRefused("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-A: one\r\n two: three\r\n\r\n");
});

test("NUL, bare CR, bare LF and other controls in a header are refused", () => {
  for (const control of ["\0", "\r", "\n", "\x01", "\x7f", "\x1b"]) {
    assertRefused(`HTTP/1.1 200 OK\r\nX-A: a${control}b\r\nContent-Length: 0\r\n\r\n`);
    assertRefused(`HTTP/1.1 200 OK\r\nX-A: ab${control}\r\nContent-Length: 0\r\n\r\n`);
    assertRefused(`HTTP/1.1 200 O${control}K\r\nContent-Length: 0\r\n\r\n`);
  }
  // A bare LF cannot end a header line either, so Content-Length cannot hide behind one.
  assertRefused("HTTP/1.1 200 OK\r\nX-A: a\nContent-Length: 5\r\n\r\nhello");
  assertRefused("HTTP/1.1 200 OK\r\nX-A: a\rContent-Length: 5\r\n\r\nhello");
  // Header names are tokens.
  assertRefused("HTTP/1.1 200 OK\r\nContent-Length : 5\r\n\r\nhello");
  assertRefused("HTTP/1.1 200 OK\r\n: empty\r\n\r\n");
  assertRefused("HTTP/1.1 200 OK\r\nX(A): 1\r\n\r\n");
  assertRefused("HTTP/1.1 200 OK\r\nno colon\r\n\r\n");
  // obs-text in a value is allowed.
  assert.equal(
    parse([bytes("HTTP/1.1 200 OK\r\nX-A: caf\xe9\r\nContent-Length: 0\r\n\r\n")]).heads[0]?.headers[1],
    "caf\xe9",
  );
});

test("bad status lines are refused", () => {
  for (const line of [
    "HTTP/2 200 OK",
    "HTTP/2.0 200 OK",
    "HTTP/1.2 200 OK",
    "HTTP/1.1 20 OK",
    "HTTP/1.1 2000 OK",
    "HTTP/1.1 099 Low",
    "HTTP/1.1 abc OK",
    "HTTP/1.1200 OK",
    "HTTP/1.1 200OK",
    "HTTP/1.1  200 OK",
    "http/1.1 200 OK",
    " HTTP/1.1 200 OK",
    "HTTP/1.1",
    "",
  ])
    assertRefused(`${line}\r\nContent-Length: 0\r\n\r\n`);
  // The reason phrase is optional.
  assert.equal(parse([bytes("HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n")]).heads[0]?.status, 200);
  assert.equal(parse([bytes("HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n")]).heads[0]?.status, 200);
});

test("a head over 64 KiB is refused, with or without its end; one just under is accepted", () => {
  const start = "HTTP/1.1 200 OK\r\nX-Big: ";
  // Byte by byte over 64 KiB is quadratic in the pending head, so 1 KiB pieces stand in for it.
  const inPieces = (data: Buffer): Buffer[][] => {
    const pieces = [];
    for (let i = 0; i < data.length; i += 1024) pieces.push(data.subarray(i, i + 1024));
    return [[data], pieces];
  };
  for (const input of inPieces(bytes(start + "a".repeat(MAX_HEAD_BYTES))))
    assert.throws(() => parse(input), isProtocolError, "without its end");
  for (const input of inPieces(bytes(`${start}${"a".repeat(MAX_HEAD_BYTES)}\r\nContent-Length: 0\r\n\r\n`)))
    assert.throws(() => parse(input), isProtocolError, "with its end");

  const tail = "\r\nContent-Length: 0";
  const fits = bytes(`${start}${"a".repeat(MAX_HEAD_BYTES - start.length - tail.length)}${tail}\r\n\r\n`);
  assert.equal(fits.length - 4, MAX_HEAD_BYTES);
  for (const input of inPieces(fits)) assert.equal(parse(input).done, true);
});

test("a transfer coding other than a lone chunked is refused", () => {
  for (const coding of [
    "gzip",
    "gzip, chunked",
    "chunked, gzip",
    "chunked, chunked",
    "identity",
    "",
    "chunked;q=1",
  ])
    assertRefused(`HTTP/1.1 200 OK\r\nTransfer-Encoding: ${coding}\r\n\r\n0\r\n\r\n`);
  assertRefused(
    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
  );
});

test("bad chunk size lines are refused", () => {
  const head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (const line of [
    "zz",
    "1000000000000", // 13 hex digits
    "0000000000005",
    "-5",
    "+5",
    "0x5",
    " 5",
    "",
    "5;ext=a\0b",
    "5;ext\rx",
  ])
    assertRefused(`${head}${line}\r\nhello\r\n0\r\n\r\n`);
  // The size line ends at CRLF only: a bare LF or CR before it is not whitespace to trim.
  for (const line of ["5\n", "5\r", "5\v", "5\f", "5\xa0", "0\n"])
    assertRefused(`${head}${line}\r\nhello\r\n0\r\n\r\n`);
  // Twelve hex digits and whitespace before an extension are fine.
  assert.equal(parse([bytes(`${head}000000000005 \t;x\r\nhello\r\n0\r\n\r\n`)]).body.toString(), "hello");
});

test("a chunk size line over 1 KiB is refused, however it arrives", () => {
  const response = bytes(
    `HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;${"x".repeat(2048)}\r\nhello\r\n0\r\n\r\n`,
  );
  const pieces = [];
  for (let i = 0; i < response.length; i += 256) pieces.push(response.subarray(i, i + 256));
  for (const input of [[response], pieces]) assert.throws(() => parse(input), isProtocolError);
});

test("trailers are checked like headers, and bounded", () => {
  const head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n";
  assertRefused(`${head}X-A: a\0b\r\n\r\n`);
  assertRefused(`${head}X-A: a\r\n folded\r\n\r\n`);
  assertRefused(`${head}no colon\r\n\r\n`);
  assertRefused(`${head}X-Big: ${"a".repeat(20 * 1024)}\r\n\r\n`);
});

test("chunk data not followed by CRLF is refused", () => {
  const head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
  assertRefused(`${head}5\r\nhello!\r\n0\r\n\r\n`);
  assertRefused(`${head}5\r\nhello\n0\r\n\r\n`);
  assertRefused(`${head}5\r\nhello\r0\r\n\r\n`);
  assertRefused(`${head}5\r\nhelloXY0\r\n\r\n`);
});

test("end() before the head or in the middle of a body is refused", () => {
  const cases: [string, string][] = [
    ["", "nothing"],
    ["HTTP/1.1 200 OK\r\nContent-Le", "a partial head"],
    ["HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", "no body yet"],
    ["HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhell", "a short body"],
    ["HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel", "a partial chunk"],
    ["HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n", "no last chunk"],
    ["HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n", "no end of trailers"],
    ["HTTP/1.1 100 Continue\r\n\r\n", "only an interim head"],
  ];
  for (const [text, what] of cases)
    assert.throws(() => parse([bytes(text)], { end: true }), isProtocolError, what);
  // A complete response, or no request at all, ends cleanly.
  assert.equal(parse([bytes("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")], { end: true }).done, true);
  const idle = new ResponseParser({ onHead: () => {}, onBody: () => {}, onComplete: () => {} });
  idle.end();
  assert.throws(() => idle.feed(bytes("HTTP/1.1 200 OK\r\n\r\n")), isProtocolError);
});

test("keep-alive: what the response says, per HTTP version", () => {
  const cases: [string, boolean][] = [
    ["HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", true],
    ["HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n", true],
    ["HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", false],
    ["HTTP/1.1 200 OK\r\nconnection: Keep-Alive, Close\r\nContent-Length: 0\r\n\r\n", false],
    ["HTTP/1.1 200 OK\r\nConnection: close\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n", false],
    ["HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", false],
    ["HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n", true],
    ["HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n", true],
    ["HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", false],
    ["HTTP/1.0 200 OK\r\nConnection: close\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n", false],
    ["HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n", false], // close-delimited
  ];
  for (const [text, keepAlive] of cases) {
    const outcome = parse([bytes(text)], { end: true });
    assert.equal(outcome.heads[0]?.keepAlive, keepAlive, text);
    assert.equal(outcome.done, true, text);
    assert.equal(outcome.reusable, keepAlive, text);
  }
});

test("Keep-Alive: timeout=N gives the upstream's idle timeout in ms", () => {
  const timeoutOf = (value: string) =>
    parse([bytes(`HTTP/1.1 200 OK\r\nKeep-Alive: ${value}\r\nContent-Length: 0\r\n\r\n`)]).heads[0]
      ?.keepAliveTimeoutMs;
  assert.equal(timeoutOf("timeout=5"), 5000);
  assert.equal(timeoutOf("timeout=5, max=1000"), 5000);
  assert.equal(timeoutOf("max=1000, timeout=30"), 30_000);
  assert.equal(timeoutOf("Timeout = 2"), 2000);
  assert.equal(timeoutOf("max=5"), undefined);
  assert.equal(timeoutOf("mytimeout=5"), undefined);
  assert.equal(
    parse([bytes("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")]).heads[0]?.keepAliveTimeoutMs,
    undefined,
  );
});

test("bytes after a complete response make the connection not reusable", () => {
  for (const text of [
    "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokX",
    "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n\r\n",
  ]) {
    for (const pieces of splits(bytes(text))) {
      const outcome = parse(pieces);
      assert.equal(outcome.heads.length, 1, text);
      assert.equal(outcome.body.toString(), "ok", text);
      assert.equal(outcome.done, true, text);
      assert.equal(outcome.reusable, false, text);
    }
  }
});

test("a parser is reused for the next response after start()", () => {
  const heads: number[] = [];
  const chunks: string[] = [];
  const parser = new ResponseParser({
    onHead: (head) => heads.push(head.status),
    onBody: (chunk) => chunks.push(chunk.toString()),
    onComplete: () => chunks.push("|"),
  });
  parser.start("GET");
  parser.feed(bytes("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\none\r\n0\r\n\r\n"));
  assert.equal(parser.reusable, true);
  parser.start("HEAD");
  assert.equal(parser.awaitingHead, true);
  assert.equal(parser.done, false);
  parser.feed(bytes("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n"));
  parser.start("GET");
  parser.feed(bytes("HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\ntwo"));
  assert.deepEqual(heads, [200, 200, 404]);
  assert.deepEqual(chunks, ["one", "|", "|", "two", "|"]);
  assert.equal(parser.reusable, true);
});

// ---- Properties -------------------------------------------------------------------------------

type Framing = "length" | "chunked" | "close";

/** A response carrying `body` with the given framing; chunk sizes are used in turn. */
function frame(body: Uint8Array, framing: Framing, sizes: readonly number[], extensions: boolean): Buffer {
  const data = Buffer.from(body);
  if (framing === "length")
    return Buffer.concat([bytes(`HTTP/1.1 200 OK\r\nContent-Length: ${data.length}\r\n\r\n`), data]);
  if (framing === "close") return Buffer.concat([bytes("HTTP/1.1 200 OK\r\nX-A: b\r\n\r\n"), data]);
  const parts = [bytes("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")];
  let at = 0;
  for (let k = 0; at < data.length; k++) {
    const size = Math.min(sizes[k % sizes.length] ?? 1, data.length - at);
    const hex = k % 2 === 0 ? size.toString(16) : size.toString(16).toUpperCase();
    parts.push(
      bytes(`${hex}${extensions ? `;k=${k};q="a b"` : ""}\r\n`),
      data.subarray(at, at + size),
      bytes("\r\n"),
    );
    at += size;
  }
  parts.push(bytes(extensions ? "0;end\r\nX-Trailer: t\r\n\r\n" : "0\r\n\r\n"));
  return Buffer.concat(parts);
}

/** `data` cut at the given points (taken modulo its length). */
function cut(data: Buffer, points: readonly number[]): Buffer[] {
  const at = [...new Set(points.map((p) => p % (data.length + 1)))].sort((a, b) => a - b);
  const pieces: Buffer[] = [];
  let from = 0;
  for (const p of at) {
    pieces.push(data.subarray(from, p));
    from = p;
  }
  pieces.push(data.subarray(from));
  return pieces;
}

const framedResponse = fc.record({
  body: fc.uint8Array({ maxLength: 3000 }),
  framing: fc.constantFrom<Framing>("length", "chunked", "close"),
  sizes: fc.array(fc.integer({ min: 1, max: 700 }), { minLength: 1, maxLength: 12 }),
  extensions: fc.boolean(),
});

test("property: any body, framed by length, chunks or close and cut anywhere, decodes to itself", () => {
  fc.assert(
    fc.property(framedResponse, fc.array(fc.nat(), { maxLength: 16 }), (r, points) => {
      const response = frame(r.body, r.framing, r.sizes, r.extensions);
      const outcome = parse(cut(response, points), { end: r.framing === "close" });
      assert.equal(outcome.heads.length, 1);
      assert.deepEqual(new Uint8Array(outcome.body), r.body);
      assert.equal(outcome.completions, 1);
      assert.equal(outcome.done, true);
      assert.equal(outcome.reusable, r.framing !== "close");
    }),
    { numRuns: 1000 },
  );
});

/** What a parser made of some bytes; only ResponseParseError is an expected way to fail. */
function judge(pieces: readonly Buffer[], method: string): string {
  try {
    const outcome = parse(pieces, { method, end: true });
    return JSON.stringify({
      statuses: outcome.heads.map((h) => h.status),
      body: outcome.body.toString("hex"),
      completions: outcome.completions,
      reusable: outcome.reusable,
    });
  } catch (error) {
    if (error instanceof ResponseParseError && error.code === "UPSTREAM_PROTOCOL") return "refused";
    throw error;
  }
}

/** Heads and bodies from likely pieces, mostly well formed, so inputs get past the status line. */
const grammatical = fc
  .tuple(
    fc.constantFrom(
      "HTTP/1.1 200 OK",
      "HTTP/1.0 200 OK",
      "HTTP/1.1 100 Continue",
      "HTTP/1.1 204 No Content",
      "HTTP/1.1 304 Not Modified",
      "HTTP/1.1 101 Switching Protocols",
      "HTTP/1.1 404",
      "HTTP/2 200",
    ),
    fc.array(
      fc.oneof(
        {
          arbitrary: fc.constantFrom(
            "Transfer-Encoding: chunked\r\n",
            "Content-Length: 5\r\n",
            "Content-Length: 0\r\n",
            "Connection: close\r\n",
            "Keep-Alive: timeout=3\r\n",
          ),
          weight: 3,
        },
        {
          arbitrary: fc
            .tuple(
              fc.constantFrom(
                "Content-Length",
                "Transfer-Encoding",
                "Connection",
                "X-A",
                "content-length ",
                " X-A",
                "",
              ),
              fc
                .array(
                  fc.constantFrom(
                    "5",
                    "0",
                    "chunked",
                    "gzip",
                    "close",
                    "keep-alive",
                    ", ",
                    " ",
                    "\t",
                    "\0",
                    "\r",
                    "\n",
                  ),
                  {
                    minLength: 1,
                    maxLength: 3,
                  },
                )
                .map((parts) => parts.join("")),
              fc.constantFrom("\r\n", "\r\n", "\r\n", "\n", "\r"),
            )
            .map(([name, value, eol]) => `${name}: ${value}${eol}`),
          weight: 2,
        },
      ),
      { maxLength: 5 },
    ),
    fc.array(
      fc.constantFrom(
        "5\r\nhello\r\n",
        "3;x=1\r\nabc\r\n",
        "0\r\n\r\n",
        "0\r\n",
        "A\r\n",
        "5",
        "a",
        "\r\n",
        "\r\n\r\n",
        "\r",
        "\n",
        "hello",
        "X: y",
        "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
      ),
      { maxLength: 12 },
    ),
  )
  .map(([status, headers, body]) => bytes(`${status}\r\n${headers.join("")}\r\n${body.join("")}`));

const mutation = fc.record({
  kind: fc.constantFrom("replace", "insert", "delete"),
  at: fc.nat(),
  byte: fc.oneof(fc.constantFrom(0, 9, 10, 13, 32, 44, 48, 58, 59), fc.integer({ min: 0, max: 255 })),
});

/** A valid response with a few bytes replaced, inserted or deleted. */
const mutatedResponse = fc
  .tuple(framedResponse, fc.array(mutation, { minLength: 1, maxLength: 4 }))
  .map(([r, mutations]) => {
    let data = frame(
      r.body.subarray(0, 64),
      r.framing,
      r.sizes.map((s) => 1 + (s % 20)),
      r.extensions,
    );
    for (const m of mutations) {
      const at = m.at % (data.length + 1);
      const byte = Buffer.of(m.byte);
      if (m.kind === "insert") data = Buffer.concat([data.subarray(0, at), byte, data.subarray(at)]);
      else if (m.kind === "delete") data = Buffer.concat([data.subarray(0, at), data.subarray(at + 1)]);
      else if (at < data.length) data = Buffer.concat([data.subarray(0, at), byte, data.subarray(at + 1)]);
    }
    return data;
  });

test("property: arbitrary and mutated bytes only ever raise ResponseParseError, and splits agree", () => {
  const input = fc.oneof(
    fc.uint8Array({ maxLength: 400 }).map((b) => Buffer.from(b)),
    grammatical,
    mutatedResponse,
  );
  fc.assert(
    fc.property(
      input,
      fc.array(fc.nat(), { maxLength: 10 }),
      fc.constantFrom("GET", "HEAD"),
      (data, points, method) => {
        const whole = judge([data], method);
        assert.equal(judge(cut(data, points), method), whole);
        assert.equal(judge(byteByByte(data), method), whole);
      },
    ),
    { numRuns: 4000 },
  );
});
