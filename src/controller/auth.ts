/**
 * Bearer-token authentication and role checks for the controller API. Three roles, each a superset
 * of the one before in what it may do: `reader` reads, `agent` also heartbeats and fetches desired
 * state, `operator` also acts (fence, unfence, restart).
 */
import { createHash, timingSafeEqual } from "node:crypto";
import type { FastifyReply, FastifyRequest } from "fastify";
import { RingfenceError } from "../lib/errors.js";

export type Role = "reader" | "agent" | "operator";

/** What a route needs: `read` (any role), `agent` (agent or operator), `operate` (operator only). */
export type Access = "read" | "agent" | "operate";

export interface Tokens {
  readonly reader: string;
  readonly agent: string;
  readonly operator: string;
}

const ALLOWED: Readonly<Record<Access, readonly Role[]>> = {
  read: ["reader", "agent", "operator"],
  agent: ["agent", "operator"],
  operate: ["operator"],
};

/** Highest role first: when two roles share a token, the token gets the larger role. */
const ROLES: readonly Role[] = ["operator", "agent", "reader"];

/**
 * Whether two tokens are equal, in time independent of where they differ and of their lengths:
 * both are hashed to SHA-256 first, so `timingSafeEqual` always compares 32 bytes.
 */
export function tokensEqual(presented: string, expected: string): boolean {
  const a = createHash("sha256").update(presented, "utf8").digest();
  const b = createHash("sha256").update(expected, "utf8").digest();
  return timingSafeEqual(a, b);
}

/** The role a token grants, or undefined. Compares against every role's token, never stopping early. */
export function roleOf(tokens: Tokens, presented: string): Role | undefined {
  let found: Role | undefined;
  for (const role of ROLES) {
    if (tokensEqual(presented, tokens[role]) && found === undefined) found = role;
  }
  return found;
}

/** The token of an `Authorization: Bearer <token>` header, or undefined when missing or malformed. */
export function bearerToken(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  const match = /^Bearer +([\x21-\x7e]+) *$/i.exec(header);
  return match?.[1];
}

/** Checks that tokens are usable before the server starts: non-empty and one per role. */
export function validateTokens(tokens: Tokens): void {
  for (const role of ROLES) {
    const token = tokens[role];
    if (typeof token !== "string" || !/^[\x21-\x7e]{8,}$/.test(token)) {
      throw new RingfenceError(
        "RINGFENCE_USAGE",
        `tokens.${role} must be at least 8 printable ASCII characters without spaces (it is sent as a bearer token)`,
      );
    }
  }
  if (new Set(ROLES.map((r) => tokens[r])).size !== ROLES.length) {
    throw new RingfenceError(
      "RINGFENCE_USAGE",
      "tokens.reader, tokens.agent and tokens.operator must all differ, or a reader could act as an operator",
    );
  }
}

/**
 * An `onRequest` hook that lets a request through only with a token whose role allows `access`:
 * 401 `RINGFENCE_UNAUTHORIZED` without a valid token, 403 `RINGFENCE_FORBIDDEN` with too small a role.
 * It runs before body parsing and validation, so an unauthenticated caller learns nothing else.
 */
export function requireRole(tokens: Tokens, access: Access) {
  const allowed = ALLOWED[access];
  return async (request: FastifyRequest, _reply: FastifyReply): Promise<void> => {
    const token = bearerToken(request.headers.authorization);
    if (token === undefined) {
      throw new RingfenceError(
        "RINGFENCE_UNAUTHORIZED",
        "send a token in an `Authorization: Bearer <token>` header",
      );
    }
    const role = roleOf(tokens, token);
    if (role === undefined) {
      throw new RingfenceError("RINGFENCE_UNAUTHORIZED", "the bearer token is not one this controller knows");
    }
    if (!allowed.includes(role)) {
      throw new RingfenceError(
        "RINGFENCE_FORBIDDEN",
        `a ${role} token may not ${request.method} ${request.routeOptions.url ?? request.url}; it needs one of: ${allowed.join(", ")}`,
      );
    }
  };
}
