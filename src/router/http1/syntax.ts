/**
 * The pieces of HTTP/1.1 message syntax (RFC 9112) that the router's request parser (client side)
 * and response parser (upstream side) share: header lines, field values, Content-Length and chunk
 * sizes. Each refuses what could be a smuggling or splitting attempt instead of guessing at it, and
 * throws {@link Http1SyntaxError}; the parsers turn it into their own error.
 */

/** A message that breaks HTTP/1.1 syntax. */
export class Http1SyntaxError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "Http1SyntaxError";
  }
}

// 1 for the characters of an HTTP token (a header name or a method), per RFC 9110 §5.6.2.
const TOKEN = new Uint8Array(128);
for (const c of "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
  TOKEN[c.charCodeAt(0)] = 1;

/** True when `text[from, to)` is a non-empty token. */
export function isToken(text: string, from: number, to: number): boolean {
  if (to <= from) return false;
  for (let i = from; i < to; i++) {
    const c = text.charCodeAt(i);
    if (c > 127 || TOKEN[c] !== 1) return false;
  }
  return true;
}

/** One header line `name: value` in `text[start, end)`: its name and its value without surrounding spaces. */
export function headerLine(text: string, start: number, end: number): [string, string] {
  const colon = text.indexOf(":", start);
  if (colon < 0 || colon >= end) {
    const first = text.charCodeAt(start);
    throw new Http1SyntaxError(
      first === 32 || first === 9 ? "obsolete line folding in a header" : "a header line without a colon",
    );
  }
  if (colon === start) throw new Http1SyntaxError("a header with an empty name");
  if (!isToken(text, start, colon)) throw new Http1SyntaxError("a header name with a character not allowed");
  let from = colon + 1;
  let to = end;
  while (from < to && isSpace(text.charCodeAt(from))) from++;
  while (to > from && isSpace(text.charCodeAt(to - 1))) to--;
  checkValue(text, from, to);
  return [text.slice(start, colon), text.slice(from, to)];
}

/** Checks every header line of `text` after `lineEnd` (interim heads and trailers, read and dropped). */
export function checkHeaders(text: string, lineEnd: number): void {
  let at = lineEnd + 2;
  while (at < text.length) {
    let next = text.indexOf("\r\n", at);
    if (next < 0) next = text.length;
    headerLine(text, at, next);
    at = next + 2;
  }
}

export function isSpace(c: number): boolean {
  return c === 32 || c === 9;
}

/** Field values may hold visible characters, spaces, tabs and obs-text; never CR, LF, NUL or other controls. */
export function checkValue(text: string, from: number, to: number): void {
  for (let i = from; i < to; i++) {
    const c = text.charCodeAt(i);
    if ((c < 32 && c !== 9) || c === 127)
      throw new Http1SyntaxError("a control character (CR, LF, NUL, …) in a header");
  }
}

/** A Content-Length value: digits, or a list of identical values (RFC 9110 §8.6). */
export function contentLengthOf(value: string): number {
  if (value.length <= 15) {
    let n = 0;
    for (let i = 0; i < value.length; i++) {
      const d = value.charCodeAt(i) - 48;
      if (d < 0 || d > 9) return contentLengthList(value);
      n = n * 10 + d;
    }
    if (value.length > 0) return n;
  }
  return contentLengthList(value);
}

function contentLengthList(value: string): number {
  const parts = value.split(",");
  let n = -1;
  for (const part of parts) {
    const p = part.trim();
    if (!/^[0-9]{1,15}$/.test(p)) throw new Http1SyntaxError(`bad Content-Length '${value.slice(0, 64)}'`);
    const v = Number(p);
    if (n !== -1 && v !== n) throw new Http1SyntaxError(`bad Content-Length '${value.slice(0, 64)}'`);
    n = v;
  }
  return n;
}

/** The size on a chunk size line (extensions are checked and ignored). */
export function chunkSizeOf(line: string): number {
  const semi = line.indexOf(";");
  // Only spaces and tabs may follow the size: trimEnd() would also take a bare CR or LF.
  const hex = (semi < 0 ? line : line.slice(0, semi)).replace(/[ \t]+$/, "");
  if (!/^[0-9a-fA-F]{1,12}$/.test(hex)) throw new Http1SyntaxError(`bad chunk size '${line.slice(0, 32)}'`);
  if (semi >= 0) checkValue(line, semi, line.length);
  return Number.parseInt(hex, 16);
}
