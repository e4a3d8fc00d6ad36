/**
 * The router's own answers: JSON bodies, and refusals in the shape every ringfence API uses,
 * `{"error": {"code", "message"}}`, with `Retry-After` when trying again soon may help. A refusal
 * after the answer has begun can only reset the connection.
 */
import type { OutgoingResponse } from "./downstream/http-server.js";

/** Answers `status` with `body` as JSON. */
export function json(
  res: OutgoingResponse,
  status: number,
  body: unknown,
  headers: readonly string[] = [],
): void {
  res.respond(status, ["content-type", "application/json", ...headers], JSON.stringify(body));
}

/** Refuses a request with a stable error code; the connection is reset when the answer has begun. */
export function refuse(
  res: OutgoingResponse,
  status: number,
  code: string,
  message: string,
  retryAfterSeconds?: number,
): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  json(
    res,
    status,
    { error: { code, message } },
    retryAfterSeconds === undefined ? [] : ["retry-after", String(retryAfterSeconds)],
  );
}
