/**
 * Sign-in tokens of the demo directory service: `base64url(payload) "." base64url(HMAC-SHA256)`.
 * This is the only code the directory service and its fault-decorrelated fallback share, so that a
 * fault in either one's own code cannot take out the other; keep it small and free of I/O.
 */
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";

/** Tokens live one hour unless the issuer says otherwise. */
export const DEFAULT_TOKEN_TTL_MS = 3_600_000;

/** Keys shorter than this are refused when issuing: an HMAC key should be at least the digest size. */
export const MIN_SECRET_BYTES = 32;

const SIGNATURE_BYTES = 32; // SHA-256
const BASE64URL = /^[A-Za-z0-9_-]+$/;
const MAX_DATE_MS = 8.64e15; // beyond this a Date is invalid and toISOString throws

/** What a token says, as JSON inside its first part. Times are milliseconds since the epoch. */
interface Payload {
  t: string;
  u: string;
  iat: number;
  exp: number;
  jti: string;
}

export interface IssuedToken {
  readonly token: string;
  /** ISO 8601 time after which the token no longer verifies. */
  readonly expiresAt: string;
  /** The token's unique id, for recording the sign-in. */
  readonly jti: string;
}

export type VerifyResult =
  | { readonly ok: true; readonly tenant: string; readonly userId: string; readonly expiresAt: string }
  | { readonly ok: false; readonly reason: "malformed" | "signature" | "expired" };

function sign(secret: Buffer, payloadPart: string): Buffer {
  return createHmac("sha256", secret).update(payloadPart, "ascii").digest();
}

/**
 * Issues a token for `claims.userId` of `claims.tenant`, valid for `claims.ttlMs` (default one
 * hour) from `now`. Throws a RangeError when the secret is shorter than 32 bytes or the TTL is not
 * a positive number of milliseconds: both are bugs of the caller, not bad input from a client.
 */
export function issueToken(
  secret: Buffer,
  claims: { tenant: string; userId: string; ttlMs?: number },
  now = Date.now(),
): IssuedToken {
  if (secret.length < MIN_SECRET_BYTES) {
    throw new RangeError(`token secret must be at least ${MIN_SECRET_BYTES} bytes, got ${secret.length}`);
  }
  const ttlMs = claims.ttlMs ?? DEFAULT_TOKEN_TTL_MS;
  if (!Number.isFinite(ttlMs) || ttlMs <= 0) {
    throw new RangeError(`token ttlMs must be a positive number of milliseconds, got ${ttlMs}`);
  }
  const iat = Math.floor(now);
  const exp = Math.floor(now + ttlMs);
  const jti = randomBytes(16).toString("base64url");
  const payload: Payload = { t: claims.tenant, u: claims.userId, iat, exp, jti };
  const payloadPart = Buffer.from(JSON.stringify(payload), "utf8").toString("base64url");
  const token = `${payloadPart}.${sign(secret, payloadPart).toString("base64url")}`;
  return { token, expiresAt: new Date(exp).toISOString(), jti };
}

/**
 * Decodes strict base64url: only the alphabet, no padding, and canonical (re-encoding gives the
 * same text). Node's decoder skips stray characters and ignores the unused low bits of the last
 * character, so without the canonical check two different tokens could carry the same signature.
 */
function decodeStrict(part: string): Buffer | undefined {
  if (!BASE64URL.test(part)) return undefined;
  const bytes = Buffer.from(part, "base64url");
  return bytes.toString("base64url") === part ? bytes : undefined;
}

function isPayload(value: unknown): value is Payload {
  if (typeof value !== "object" || value === null) return false;
  const p = value as Record<string, unknown>;
  return (
    typeof p.t === "string" &&
    p.t.length > 0 &&
    typeof p.u === "string" &&
    p.u.length > 0 &&
    typeof p.jti === "string" &&
    Number.isSafeInteger(p.iat) &&
    Number.isSafeInteger(p.exp) &&
    Math.abs(p.exp as number) <= MAX_DATE_MS
  );
}

/**
 * Checks a token's form, signature (in constant time) and expiry at `now`, in that order, and
 * returns its tenant and user when all three hold. Never throws, whatever `token` is.
 */
export function verifyToken(secret: Buffer, token: unknown, now = Date.now()): VerifyResult {
  if (typeof token !== "string" || token.length > 4096) return { ok: false, reason: "malformed" };
  const dot = token.indexOf(".");
  if (dot <= 0 || dot !== token.lastIndexOf(".")) return { ok: false, reason: "malformed" };
  const payloadPart = token.slice(0, dot);
  const signature = decodeStrict(token.slice(dot + 1));
  if (decodeStrict(payloadPart) === undefined || signature === undefined) {
    return { ok: false, reason: "malformed" };
  }
  if (signature.length !== SIGNATURE_BYTES) return { ok: false, reason: "malformed" };
  if (!timingSafeEqual(signature, sign(secret, payloadPart))) return { ok: false, reason: "signature" };
  let payload: unknown;
  try {
    payload = JSON.parse(Buffer.from(payloadPart, "base64url").toString("utf8"));
  } catch {
    return { ok: false, reason: "malformed" };
  }
  if (!isPayload(payload)) return { ok: false, reason: "malformed" };
  if (now >= payload.exp) return { ok: false, reason: "expired" };
  return { ok: true, tenant: payload.t, userId: payload.u, expiresAt: new Date(payload.exp).toISOString() };
}
