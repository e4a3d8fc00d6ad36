/**
 * Read routes: health (no token), topology, layout, state, routing table and world status.
 */
import type { FastifyInstance } from "fastify";
import { requireRole } from "../auth.js";
import type { ControllerContext } from "../context.js";
import { ERROR_RESPONSES } from "../http-errors.js";
import { buildRoutingTable } from "../routing.js";
import { CELL_STATE, ROUTING_TABLE } from "../schemas.js";
import { buildStatus } from "../status.js";

/** Events in the status tail. */
const STATUS_EVENTS = 20;

export function registerReadRoutes(app: FastifyInstance, ctx: ControllerContext): void {
  const read = requireRole(ctx.tokens, "read");

  app.get(
    "/v1/health",
    {
      schema: {
        response: {
          200: {
            type: "object",
            required: ["status", "version"],
            properties: { status: { type: "string" }, version: { type: "string" } },
          },
        },
      },
    },
    async () => ({ status: "ok", version: ctx.version }),
  );

  app.get(
    "/v1/topology",
    {
      onRequest: read,
      schema: { response: { 200: { type: "object", additionalProperties: true }, ...ERROR_RESPONSES } },
    },
    async () => ctx.index.topology,
  );

  app.get(
    "/v1/layout",
    {
      onRequest: read,
      schema: { response: { 200: { type: "object", additionalProperties: true }, ...ERROR_RESPONSES } },
    },
    async () => ctx.index.layout,
  );

  app.get(
    "/v1/state",
    {
      onRequest: read,
      schema: {
        response: {
          200: {
            type: "object",
            required: ["cells", "bucketTableVersion", "desiredVersion"],
            properties: {
              cells: { type: "array", items: CELL_STATE },
              bucketTableVersion: { type: "integer" },
              desiredVersion: { type: "integer" },
            },
          },
          ...ERROR_RESPONSES,
        },
      },
    },
    async () => {
      const snapshot = await ctx.store.snapshot();
      return {
        cells: ctx.index.orderCells(snapshot.cells),
        bucketTableVersion: snapshot.bucketTable.version,
        desiredVersion: snapshot.desiredVersion,
      };
    },
  );

  app.get(
    "/v1/routing",
    { onRequest: read, schema: { response: { 200: ROUTING_TABLE, ...ERROR_RESPONSES } } },
    async () => buildRoutingTable(ctx.index, await ctx.store.snapshot(), ctx.clock(), ctx.heartbeatTimeoutMs),
  );

  // The status document is large and described in status.ts; it is sent as built, without a
  // response schema that would silently drop any field the two forgot to agree on.
  app.get("/v1/status", { onRequest: read, schema: { response: ERROR_RESPONSES } }, async () => {
    const [snapshot, events] = await Promise.all([ctx.store.snapshot(), ctx.store.tail(STATUS_EVENTS)]);
    return buildStatus({
      index: ctx.index,
      snapshot,
      events,
      nowMs: ctx.clock(),
      heartbeatTimeoutMs: ctx.heartbeatTimeoutMs,
    });
  });
}
