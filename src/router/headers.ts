/**
 * Headers on the way through the router, read and written as flat `[name, value, …]` lists in one
 * pass each (node builds `req.headers` only when asked, and the hot path never asks).
 *
 * Upstream, the client's headers go on in order, minus hop-by-hop ones (RFC 9110 §7.6.1: those
 * below and any the Connection header names), Host and Content-Length (the upstream connection sets
 * its own) and the headers the router sets itself (`x-ringfence-cell`, `x-ringfence-router-region`,
 * `x-ringfence-attempt`; `x-forwarded-for` is extended with the client's address). Downstream, the
 * upstream's headers go back minus hop-by-hop ones.
 */
import type { HeaderValue } from "./policy/tenant.js";

const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "transfer-encoding",
  "upgrade",
  "te",
  "trailer",
]);
const HOP_BY_HOP_LENGTHS = new Set([...HOP_BY_HOP].map((name) => name.length));
/** Dropped on the way up besides hop-by-hop headers. */
const NOT_FORWARDED = new Set([
  "host",
  "content-length",
  "x-ringfence-cell",
  "x-ringfence-router-region",
  "x-ringfence-attempt",
  "x-forwarded-for",
]);

/** What the router needs from a request's headers, read in one pass. */
export interface RequestHeaders {
  /** The tenant header's value (an array when it came more than once), as `parseTenant` takes it. */
  readonly tenant: HeaderValue;
  /** True when the request carries an `Idempotency-Key`. */
  readonly idempotencyKey: boolean;
  /** The declared body length, when there is one. */
  readonly contentLength: string | undefined;
  /** Header lines to send upstream, each ending in CRLF (the router's own are added by {@link upstreamLines}). */
  readonly lines: string;
  /** The client's `X-Forwarded-For`, joined when it came more than once. */
  readonly forwardedFor: string | undefined;
}

/** Reads a request's raw headers; `tenantHeader` is lower-case. */
export function readRequestHeaders(raw: readonly string[], tenantHeader: string): RequestHeaders {
  let tenant: string | string[] | undefined;
  let idempotencyKey = false;
  let contentLength: string | undefined;
  let forwardedFor: string | undefined;
  let connection: string | undefined;
  let lines = "";
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string;
    const value = raw[i + 1] as string;
    const lower = name.toLowerCase();
    if (lower === tenantHeader) {
      if (tenant === undefined) tenant = value;
      else if (typeof tenant === "string") tenant = [tenant, value];
      else tenant.push(value);
    } else if (lower === "idempotency-key") idempotencyKey = true;
    if (HOP_BY_HOP.has(lower)) {
      if (lower === "connection") connection = connection === undefined ? value : `${connection}, ${value}`;
      continue;
    }
    if (NOT_FORWARDED.has(lower)) {
      if (lower === "content-length") contentLength = value;
      else if (lower === "x-forwarded-for")
        forwardedFor = forwardedFor === undefined ? value : `${forwardedFor}, ${value}`;
      continue;
    }
    lines += `${name}: ${value}\r\n`;
  }
  const named = connection === undefined ? undefined : connectionTokens(connection);
  // Rare: the client's Connection header names further headers to drop. Build the lines again.
  if (named !== undefined) lines = linesWithout(raw, named);
  return { tenant, idempotencyKey, contentLength, lines, forwardedFor };
}

/** The lines to send upstream: the client's, then the cell, the router's region and X-Forwarded-For. */
export function upstreamLines(headers: RequestHeaders, cell: string, region: string, peer: string): string {
  const forwarded = headers.forwardedFor === undefined ? peer : `${headers.forwardedFor}, ${peer}`;
  return `${headers.lines}x-ringfence-cell: ${cell}\r\nx-ringfence-router-region: ${region}\r\nx-forwarded-for: ${forwarded}\r\n`;
}

/** The upstream's response headers minus hop-by-hop ones (and those its Connection header names). */
export function responseHeaders(headers: readonly string[]): string[] {
  let named: Set<string> | undefined;
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i] as string;
    if (name.length === 10 && name.toLowerCase() === "connection")
      named = connectionTokens(headers[i + 1] as string);
  }
  const out: string[] = [];
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i] as string;
    // Only names as long as a hop-by-hop one are lower-cased and looked up (unless Connection named others).
    if (named !== undefined || HOP_BY_HOP_LENGTHS.has(name.length)) {
      const lower = name.toLowerCase();
      if (HOP_BY_HOP.has(lower) || named?.has(lower)) continue;
    }
    out.push(name, headers[i + 1] as string);
  }
  return out;
}

/** The first value of a header in a flat `[name, value, …]` list; `name` is lower-case. */
export function headerValue(headers: readonly string[], name: string): string | undefined {
  for (let i = 0; i < headers.length; i += 2)
    if ((headers[i] as string).toLowerCase() === name) return headers[i + 1] as string;
  return undefined;
}

/** Header names a Connection header lists beyond `keep-alive` and `close`; undefined when none. */
function connectionTokens(value: string): Set<string> | undefined {
  const short = value.length <= 10 ? value.toLowerCase() : "";
  if (short === "keep-alive" || short === "close") return undefined;
  const tokens = new Set<string>();
  for (const t of value.split(",")) {
    const token = t.trim().toLowerCase();
    if (token !== "" && token !== "keep-alive" && token !== "close") tokens.add(token);
  }
  return tokens.size > 0 ? tokens : undefined;
}

function linesWithout(raw: readonly string[], named: ReadonlySet<string>): string {
  let lines = "";
  for (let i = 0; i < raw.length; i += 2) {
    const lower = (raw[i] as string).toLowerCase();
    if (HOP_BY_HOP.has(lower) || NOT_FORWARDED.has(lower) || named.has(lower)) continue;
    lines += `${raw[i]}: ${raw[i + 1]}\r\n`;
  }
  return lines;
}
