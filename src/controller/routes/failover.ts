/**
 * Failover routes: `GET /v1/failover` (reader) shows every cell's phase, the failover under way
 * (with its estimate when it waits for consent) and the recent history; `POST
 * /v1/cells/:cell/failover/approve` (operator, `acceptDataLoss: true` required) gives the consent a
 * cell in `awaiting-consent` waits for; `POST /v1/cells/:cell/switchover` (operator, `{to, reason}`)
 * starts a planned switchover (202: it runs in the background; follow it with GET /v1/failover).
 */
import type { FastifyInstance } from "fastify";
import { RingfenceError } from "../../lib/errors.js";
import { requireRole } from "../auth.js";
import type { ControllerContext } from "../context.js";
import { ERROR_RESPONSES } from "../http-errors.js";
import { CELL_STATE, param, REASON } from "../schemas.js";
import { operatorData } from "./operator.js";

const HISTORY = 50;

export function registerFailoverRoutes(app: FastifyInstance, ctx: ControllerContext): void {
  const read = requireRole(ctx.tokens, "read");
  const operate = requireRole(ctx.tokens, "operate");

  app.get(
    "/v1/failover",
    {
      onRequest: read,
      schema: {
        response: {
          200: {
            type: "object",
            required: ["durability", "cells", "history"],
            properties: {
              durability: { enum: ["strict", "available"] },
              cells: {
                type: "array",
                items: {
                  type: "object",
                  required: ["cell", "phase", "failover"],
                  properties: {
                    cell: CELL_STATE,
                    phase: { type: "string" },
                    failover: { type: ["object", "null"], additionalProperties: true },
                  },
                },
              },
              history: { type: "array", items: { type: "object", additionalProperties: true } },
              reconcilerError: { type: "object", additionalProperties: true },
              reconciledAtMs: { type: "number" },
              detection: { type: "object", additionalProperties: true },
            },
          },
          ...ERROR_RESPONSES,
        },
      },
    },
    async () => {
      // Read before the cells, so that the cells shown include what the pass that began at
      // reconciledAtMs wrote (a pass finishing during the reads would otherwise be claimed unseen).
      const { lastError, reconciledAtMs } = ctx.failover;
      return {
        durability: ctx.failover.durability,
        cells: await ctx.store.cells.states(),
        history: await ctx.store.cells.history(undefined, HISTORY),
        ...(lastError ? { reconcilerError: lastError } : {}),
        ...(reconciledAtMs === undefined ? {} : { reconciledAtMs }),
        detection: ctx.index.topology.failover.detection,
      };
    },
  );

  app.post<{ Params: { cell: string }; Body: { reason: string; acceptDataLoss: boolean } }>(
    "/v1/cells/:cell/failover/approve",
    {
      onRequest: operate,
      schema: {
        params: param("cell"),
        body: {
          type: "object",
          required: ["reason", "acceptDataLoss"],
          additionalProperties: false,
          properties: { reason: REASON, acceptDataLoss: { type: "boolean" } },
        },
        response: { 200: { type: "object", additionalProperties: true }, ...ERROR_RESPONSES },
      },
    },
    async (request) => {
      const { cell } = request.params;
      if (!ctx.index.cells.has(cell))
        throw new RingfenceError("RINGFENCE_NOT_FOUND", `no cell ${cell} in this world`);
      if (request.body.acceptDataLoss !== true) {
        throw new RingfenceError(
          "RINGFENCE_BAD_REQUEST",
          "body.acceptDataLoss must be true: approving promotes a standby that may lack acknowledged writes",
          { problems: [{ path: "body.acceptDataLoss", message: "must be true" }] },
        );
      }
      const data = operatorData(request, "failover-approve", request.body.reason);
      await ctx.failover.approve(cell, `${data.reason} (from ${data.ip})`);
      return (await ctx.store.cells.states()).find((s) => s.cell.cell === cell) ?? {};
    },
  );

  app.post<{ Params: { cell: string }; Body: { to: string; reason: string } }>(
    "/v1/cells/:cell/switchover",
    {
      onRequest: operate,
      schema: {
        params: param("cell"),
        body: {
          type: "object",
          required: ["to", "reason"],
          additionalProperties: false,
          properties: { to: { type: "string", minLength: 1, maxLength: 200 }, reason: REASON },
        },
        response: { 202: { type: "object", additionalProperties: true }, ...ERROR_RESPONSES },
      },
    },
    async (request, reply) => {
      const { cell } = request.params;
      if (!ctx.index.cells.has(cell))
        throw new RingfenceError("RINGFENCE_NOT_FOUND", `no cell ${cell} in this world`);
      const data = operatorData(request, "switchover", request.body.reason);
      await ctx.failover.switchover(cell, request.body.to, `${data.reason} (from ${data.ip})`);
      return reply.code(202).send((await ctx.store.cells.states()).find((s) => s.cell.cell === cell) ?? {});
    },
  );
}
