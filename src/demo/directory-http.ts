/**
 * HTTP plumbing of the directory service: its error registry, JSON answers, bounded body reading
 * and the checks on the tenant header, ids and LSNs. The fallback deliberately has its own.
 */
import type { IncomingMessage, ServerResponse } from "node:http";

/**
 * Every error the directory service answers with: the HTTP status, and whether a client may retry
 * the same request (503s also carry `Retry-After: 1`). Clients match on the code.
 */
export const DIRECTORY_ERRORS = {
  INVALID_TENANT: { status: 400, retryable: false },
  INVALID_ID: { status: 400, retryable: false },
  INVALID_LSN: { status: 400, retryable: false },
  MALFORMED_JSON: { status: 400, retryable: false },
  INVALID_BODY: { status: 400, retryable: false },
  UNAUTHENTICATED: { status: 401, retryable: false },
  TOKEN_INVALID: { status: 401, retryable: false },
  TENANT_MISMATCH: { status: 403, retryable: false },
  NOT_FOUND: { status: 404, retryable: false },
  USER_NOT_FOUND: { status: 404, retryable: false },
  METHOD_NOT_ALLOWED: { status: 405, retryable: false },
  BODY_TOO_LARGE: { status: 413, retryable: false },
  INTERNAL: { status: 500, retryable: false },
  WRITES_UNAVAILABLE: { status: 503, retryable: true },
  WRITE_NOT_CONFIRMED: { status: 503, retryable: true },
  STORE_UNAVAILABLE: { status: 503, retryable: true },
} as const satisfies Record<string, { status: number; retryable: boolean }>;

export type DirectoryErrorCode = keyof typeof DIRECTORY_ERRORS;

/** An error answered to the client as `{"error": {"code", "message", "field"?}}`. */
export class HttpError extends Error {
  readonly code: DirectoryErrorCode;
  readonly status: number;
  readonly field: string | undefined;
  readonly headers: Readonly<Record<string, string>>;

  constructor(
    code: DirectoryErrorCode,
    message: string,
    options: { field?: string; headers?: Record<string, string>; cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "HttpError";
    this.code = code;
    this.status = DIRECTORY_ERRORS[code].status;
    this.field = options.field;
    this.headers = {
      ...(DIRECTORY_ERRORS[code].retryable ? { "Retry-After": "1" } : {}),
      ...options.headers,
    };
  }

  body(): { error: { code: DirectoryErrorCode; message: string; field?: string } } {
    return {
      error: { code: this.code, message: this.message, ...(this.field ? { field: this.field } : {}) },
    };
  }
}

/** Writes `body` as JSON with `status` and extra headers; a no-op once the answer has started. */
export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Readonly<Record<string, string>> = {},
): void {
  if (res.headersSent) return;
  const text = JSON.stringify(body);
  res.writeHead(status, {
    ...headers,
    "Content-Type": "application/json; charset=utf-8",
    "Content-Length": Buffer.byteLength(text),
    "Cache-Control": "no-store",
  });
  res.end(text);
}

/** Request bodies larger than this are refused with 413. */
export const MAX_BODY_BYTES = 64 * 1024;

/**
 * Reads the request body as JSON, refusing more than `MAX_BODY_BYTES` (413, by Content-Length
 * before reading or by counting while reading) and anything that does not parse (400).
 */
export async function readJsonBody(req: IncomingMessage): Promise<unknown> {
  const tooLarge = () =>
    new HttpError("BODY_TOO_LARGE", `the request body is larger than ${MAX_BODY_BYTES} bytes (64 KiB)`, {
      headers: { Connection: "close" },
    });
  const declared = Number(req.headers["content-length"] ?? "0");
  if (declared > MAX_BODY_BYTES) {
    req.resume(); // discard what the client still sends rather than reset the connection under it
    throw tooLarge();
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) {
      req.resume();
      throw tooLarge();
    }
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString("utf8");
  if (text.trim() === "") {
    throw new HttpError("MALFORMED_JSON", "the request body is empty; send a JSON object");
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new HttpError("MALFORMED_JSON", `the request body is not valid JSON: ${(err as Error).message}`);
  }
}

const IDENT = /^[A-Za-z0-9._-]{1,128}$/;

/** The tenant from `X-Tenant`: 1 to 128 characters of letters, digits, '.', '_' or '-'. */
export function tenantOf(req: IncomingMessage): string {
  const value = req.headers["x-tenant"];
  if (typeof value !== "string" || !IDENT.test(value)) {
    const got = value === undefined ? "it is missing" : `got ${JSON.stringify(value).slice(0, 160)}`;
    throw new HttpError(
      "INVALID_TENANT",
      `the X-Tenant header must be 1 to 128 characters of letters, digits, '.', '_' or '-' (${got})`,
      { field: "X-Tenant" },
    );
  }
  return value;
}

/** Checks a user id (from the path or a body field named `field`). */
export function checkId(value: unknown, field: string): string {
  if (typeof value !== "string" || !IDENT.test(value)) {
    throw new HttpError(
      "INVALID_ID",
      `${field} must be 1 to 128 characters of letters, digits, '.', '_' or '-' (got ${JSON.stringify(value ?? null).slice(0, 160)})`,
      { field },
    );
  }
  return value;
}

/** `X-Ringfence-Min-LSN` in PostgreSQL's `XXXXXXXX/XXXXXXXX` form, or undefined when absent. */
export function minLsnOf(req: IncomingMessage): string | undefined {
  const value = req.headers["x-ringfence-min-lsn"];
  if (value === undefined) return undefined;
  if (typeof value !== "string" || !/^[0-9A-Fa-f]{1,8}\/[0-9A-Fa-f]{1,8}$/.test(value)) {
    throw new HttpError(
      "INVALID_LSN",
      `the X-Ringfence-Min-LSN header must be an LSN like 0/16B3748, as returned in X-Ringfence-Commit-LSN (got ${JSON.stringify(value).slice(0, 80)})`,
      { field: "X-Ringfence-Min-LSN" },
    );
  }
  return value;
}

/** The bearer token of `Authorization`, or an UNAUTHENTICATED error saying how to send one. */
export function bearerOf(req: IncomingMessage): string {
  const match = /^Bearer +(\S+) *$/i.exec(req.headers.authorization ?? "");
  if (!match?.[1]) {
    throw new HttpError("UNAUTHENTICATED", "send the token as `Authorization: Bearer <token>`", {
      field: "Authorization",
      headers: { "WWW-Authenticate": 'Bearer realm="ringfence-demo"' },
    });
  }
  return match[1];
}
