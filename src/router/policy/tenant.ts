/**
 * Which tenant a request belongs to: from a header (default `x-tenant`) or, when a path prefix is
 * configured, from the first path segment after it (`/t/<tenant>/rest` → tenant, `/rest`). The
 * parser is total: it never throws, whatever the request carries, and answers with a stable
 * `RINGFENCE_TENANT_*` code that the router turns into a 400.
 */

/** The header that carries the tenant id unless `TenantOptions.header` says otherwise. */
export const DEFAULT_TENANT_HEADER = "x-tenant";

/** The longest valid tenant id, in characters. */
export const MAX_TENANT_LENGTH = 128;

/** Why no tenant could be taken from a request: it names none, or the one it names is malformed. */
export type TenantErrorCode = "RINGFENCE_TENANT_MISSING" | "RINGFENCE_TENANT_INVALID";

/**
 * The outcome of {@link parseTenant}: the tenant and the path to forward (the prefix removed in
 * path mode, unchanged in header mode), or a code with a message that says how to fix the request.
 */
export type TenantResult =
  | { readonly ok: true; readonly tenant: string; readonly path: string }
  | { readonly ok: false; readonly code: TenantErrorCode; readonly message: string };

/** A header value as node's `IncomingHttpHeaders` or undici carries it. */
export type HeaderValue = string | readonly string[] | undefined;

/** The parts of a request the tenant can come from. */
export interface TenantInput {
  /** Request headers; names are matched case-insensitively (node already lower-cases them). */
  readonly headers: Readonly<Record<string, HeaderValue>>;
  /** The request target, path and query, e.g. `/t/acme/users?limit=10`. */
  readonly path: string;
}

/** Where to look for the tenant. With neither option set, the `x-tenant` header is used. */
export interface TenantOptions {
  /** The header that carries the tenant id, matched case-insensitively. Default `x-tenant`. */
  readonly header?: string;
  /**
   * When set (e.g. `"/t/"`), the tenant is taken from the path segment after this prefix instead of
   * a header, and the prefix and tenant are removed from the forwarded path. Default: unset.
   */
  readonly pathPrefix?: string;
}

const VALID_ID = "1–128 characters of A–Z, a–z, 0–9, '.', '_' or '-', not starting with '.'";
const NO_OPTIONS: TenantOptions = Object.freeze({});
const SLASH = 47;
const QUESTION = 63;
const DOT = 46;

// One byte per ASCII code: 1 when the character may appear in a tenant id.
const TENANT_CHARS = new Uint8Array(128);
for (let c = 0; c < 128; c++) {
  const ch = String.fromCharCode(c);
  if (/[A-Za-z0-9._-]/.test(ch)) TENANT_CHARS[c] = 1;
}

/** True when `value` is a valid tenant id: 1–128 characters of `[A-Za-z0-9._-]`, not starting with `.`. */
export function isValidTenant(value: string): boolean {
  return typeof value === "string" && validSpan(value, 0, value.length);
}

function validSpan(s: string, start: number, end: number): boolean {
  const n = end - start;
  if (n < 1 || n > MAX_TENANT_LENGTH || s.charCodeAt(start) === DOT) return false;
  for (let i = start; i < end; i++) {
    if (TENANT_CHARS[s.charCodeAt(i)] !== 1) return false;
  }
  return true;
}

/**
 * Takes the tenant from a request: from the `options.header` header (default `x-tenant`), or from
 * the path after `options.pathPrefix` when that is set. Never throws; repeated headers are accepted
 * only when every copy carries the same id.
 */
export function parseTenant(input: TenantInput, options: TenantOptions = NO_OPTIONS): TenantResult {
  try {
    const prefix = options?.pathPrefix;
    if (typeof prefix === "string") return fromPath(input?.path, prefix);
    const header = typeof options?.header === "string" ? options.header : DEFAULT_TENANT_HEADER;
    return fromHeader(input?.headers, input?.path, header);
  } catch {
    // Only a hostile headers object (a throwing getter or proxy) gets here; a plain request cannot.
    return invalid(`the request's headers could not be read; send the tenant id as ${VALID_ID}`);
  }
}

function fromHeader(headers: unknown, path: unknown, header: string): TenantResult {
  const raw = lookup(headers, header);
  let value: unknown = raw;
  if (Array.isArray(raw)) {
    if (raw.length === 0) return missingHeader(header);
    value = raw[0];
    for (let i = 1; i < raw.length; i++) {
      if (raw[i] !== value) {
        return invalid(
          `the ${header} header was sent ${raw.length} times with different values; send it once`,
        );
      }
    }
  }
  if (value === undefined || value === null || value === "") return missingHeader(header);
  if (typeof value !== "string" || !validSpan(value, 0, value.length)) {
    return invalid(`the ${header} header does not hold a valid tenant id: a tenant id is ${VALID_ID}`);
  }
  return { ok: true, tenant: value, path: typeof path === "string" ? path : "/" };
}

function lookup(headers: unknown, name: string): unknown {
  if (headers === null || typeof headers !== "object") return undefined;
  const record = headers as Record<string, unknown>;
  const lower = name.toLowerCase();
  if (Object.hasOwn(record, lower)) return record[lower];
  // Node lower-cases header names; other callers may not, so fall back to a scan. It only runs
  // when the header is absent under its lower-case name, which is the error path for node.
  for (const key in record) {
    if (key.length === lower.length && Object.hasOwn(record, key) && key.toLowerCase() === lower) {
      return record[key];
    }
  }
  return undefined;
}

function fromPath(path: unknown, prefix: string): TenantResult {
  if (typeof path !== "string" || !path.startsWith(prefix)) return missingPath(prefix);
  let start = prefix.length;
  if (prefix.charCodeAt(prefix.length - 1) !== SLASH) {
    // "/t" must not match "/tenants/...": the prefix has to end at a segment boundary.
    if (path.charCodeAt(start) !== SLASH) return missingPath(prefix);
    start++;
  }
  // Stop one past the longest valid id, so a huge path costs no more than a short one.
  const limit = Math.min(path.length, start + MAX_TENANT_LENGTH + 1);
  let end = start;
  while (end < limit) {
    const c = path.charCodeAt(end);
    if (c === SLASH || c === QUESTION) break;
    end++;
  }
  if (end === start) return missingPath(prefix);
  if (!validSpan(path, start, end)) {
    return invalid(
      `the path segment after ${shownPrefix(prefix)} is not a valid tenant id: a tenant id is ${VALID_ID}`,
    );
  }
  const tenant = path.slice(start, end);
  let rest: string;
  if (end === path.length) rest = "/";
  else if (path.charCodeAt(end) === QUESTION) rest = `/${path.slice(end)}`;
  else rest = path.slice(end);
  return { ok: true, tenant, path: rest };
}

function shownPrefix(prefix: string): string {
  return prefix.endsWith("/") ? prefix : `${prefix}/`;
}

function missingHeader(header: string): TenantResult {
  return {
    ok: false,
    code: "RINGFENCE_TENANT_MISSING",
    message: `no tenant: send the tenant id in the ${header} header (${VALID_ID})`,
  };
}

function missingPath(prefix: string): TenantResult {
  return {
    ok: false,
    code: "RINGFENCE_TENANT_MISSING",
    message: `no tenant: start the path with ${shownPrefix(prefix)}<tenant>/ (a tenant id is ${VALID_ID})`,
  };
}

function invalid(message: string): TenantResult {
  return { ok: false, code: "RINGFENCE_TENANT_INVALID", message };
}
