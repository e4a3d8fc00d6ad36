/**
 * The routing table pushed live (reader, agent or operator token): `GET /v1/routing/stream` sends
 * `event: routing` with the whole table at once and again whenever it changes (see
 * `routing-feed.ts`). `GET /v1/routing` (in `read.ts`) answers the same table once, for polling.
 */
import type { FastifyInstance } from "fastify";
import { requireRole } from "../auth.js";
import type { ControllerContext } from "../context.js";
import { ERROR_RESPONSES } from "../http-errors.js";
import { streamRouting } from "../routing-feed.js";

export function registerRoutingRoutes(
  app: FastifyInstance,
  ctx: ControllerContext,
  keepAliveMs?: number,
): void {
  const read = requireRole(ctx.tokens, "read");

  app.get(
    "/v1/routing/stream",
    { onRequest: read, schema: { response: ERROR_RESPONSES } },
    async (_request, reply) => {
      await streamRouting(reply, ctx.routing, keepAliveMs);
    },
  );
}
