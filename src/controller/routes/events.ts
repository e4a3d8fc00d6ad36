/**
 * The event log (reader token): a page of events, and a live server-sent-events stream.
 */
import type { FastifyInstance } from "fastify";
import { RingfenceError } from "../../lib/errors.js";
import { requireRole } from "../auth.js";
import type { ControllerContext } from "../context.js";
import { resumeAfter, streamEvents } from "../events.js";
import { ERROR_RESPONSES } from "../http-errors.js";
import { WORLD_EVENT } from "../schemas.js";

/** Query values arrive as strings; the controller's validator does not coerce types. */
const AFTER = { type: "string", pattern: "^[0-9]{1,15}$" } as const;
const LIMIT = { type: "string", pattern: "^[0-9]{1,4}$" } as const;
const DEFAULT_LIMIT = 100;
const MAX_LIMIT = 1_000;

export function registerEventRoutes(
  app: FastifyInstance,
  ctx: ControllerContext,
  keepAliveMs?: number,
): void {
  const read = requireRole(ctx.tokens, "read");

  app.get<{ Querystring: { after?: string; limit?: string } }>(
    "/v1/events",
    {
      onRequest: read,
      schema: {
        querystring: {
          type: "object",
          additionalProperties: false,
          properties: { after: AFTER, limit: LIMIT },
        },
        response: {
          200: {
            type: "object",
            required: ["events"],
            properties: { events: { type: "array", items: WORLD_EVENT } },
          },
          ...ERROR_RESPONSES,
        },
      },
    },
    async (request) => {
      const after = Number(request.query.after ?? 0);
      const limit = Number(request.query.limit ?? DEFAULT_LIMIT);
      if (limit < 1 || limit > MAX_LIMIT) {
        throw new RingfenceError(
          "RINGFENCE_BAD_REQUEST",
          `querystring.limit must be 1..${MAX_LIMIT}, got ${limit}`,
          {
            problems: [{ path: "querystring.limit", message: `must be between 1 and ${MAX_LIMIT}` }],
          },
        );
      }
      return { events: await ctx.store.events(after, limit) };
    },
  );

  app.get<{ Querystring: { after?: string } }>(
    "/v1/events/stream",
    {
      onRequest: read,
      schema: {
        querystring: { type: "object", additionalProperties: false, properties: { after: AFTER } },
        response: ERROR_RESPONSES,
      },
    },
    async (request, reply) => {
      await streamEvents(
        reply,
        ctx.store,
        ctx.feed,
        resumeAfter(request.headers["last-event-id"], request.query.after),
        keepAliveMs,
      );
    },
  );
}
