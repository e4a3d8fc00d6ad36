/**
 * Operator actions (operator token): fence and unfence a cell, restart a process. Each appends an
 * event (actor `operator`, the action, the reason and the client's address) in the same transaction
 * as the change, and answers with the new state and the event.
 */
import type { FastifyInstance, FastifyRequest } from "fastify";
import { RingfenceError } from "../../lib/errors.js";
import { requireRole } from "../auth.js";
import type { ControllerContext } from "../context.js";
import { ERROR_RESPONSES } from "../http-errors.js";
import { CELL_STATE, param, REASON_BODY, RESTART_BODY, WORLD_EVENT } from "../schemas.js";

const CELL_ACTION_RESPONSE = {
  type: "object",
  required: ["cell", "desiredVersion", "changed", "event"],
  properties: {
    cell: CELL_STATE,
    desiredVersion: { type: "integer" },
    /** False when the cell already was in the requested state (the action is still logged). */
    changed: { type: "boolean" },
    event: WORLD_EVENT,
  },
} as const;

const RESTART_RESPONSE = {
  type: "object",
  required: ["process", "desiredVersion", "event"],
  properties: {
    process: {
      type: "object",
      required: ["id", "zone", "nonce"],
      properties: { id: { type: "string" }, zone: { type: "string" }, nonce: { type: "integer" } },
    },
    desiredVersion: { type: "integer" },
    event: WORLD_EVENT,
  },
} as const;

/** What every operator action records: the action, the operator's reason and the client's address. */
export const operatorData = (request: FastifyRequest, action: string, reason: string) => ({
  action,
  reason,
  ip: request.ip,
});

export function registerOperatorRoutes(app: FastifyInstance, ctx: ControllerContext): void {
  const operate = requireRole(ctx.tokens, "operate");

  for (const [action, fenced] of [
    ["fence", true],
    ["unfence", false],
  ] as const) {
    app.post<{ Params: { cell: string }; Body: { reason: string } }>(
      `/v1/cells/:cell/${action}`,
      {
        onRequest: operate,
        schema: {
          params: param("cell"),
          body: REASON_BODY,
          response: { 200: CELL_ACTION_RESPONSE, ...ERROR_RESPONSES },
        },
      },
      async (request) => {
        const { cell } = request.params;
        const { reason } = request.body;
        const result = ctx.index.cells.has(cell)
          ? await ctx.store.setFenced(cell, fenced, {
              kind: fenced ? "cell.fenced" : "cell.unfenced",
              actor: "operator",
              subject: cell,
              message: `${cell} ${fenced ? "fenced" : "unfenced"} by an operator: ${reason}`,
              data: operatorData(request, action, reason),
            })
          : undefined;
        if (!result) {
          throw new RingfenceError(
            "RINGFENCE_NOT_FOUND",
            `no cell ${cell} in this world; cells are ${[...ctx.index.cells].join(", ")}`,
          );
        }
        return result;
      },
    );
  }

  app.post<{ Body: { id: string; reason: string } }>(
    "/v1/processes/restart",
    {
      onRequest: operate,
      schema: { body: RESTART_BODY, response: { 200: RESTART_RESPONSE, ...ERROR_RESPONSES } },
    },
    async (request) => {
      const { id, reason } = request.body;
      const placed = ctx.index.processes.get(id);
      if (!placed) {
        throw new RingfenceError(
          "RINGFENCE_NOT_FOUND",
          `no process ${id} in this world's layout; ids look like database:cell-0/us-east, writer:cell-0/us-east or instance:directory/cell-0/us-east/0`,
          { problems: [{ path: "body.id", message: "is not a process of the layout (GET /v1/layout)" }] },
        );
      }
      const result = await ctx.store.bumpRestart(id, {
        kind: "process.restart-requested",
        actor: "operator",
        subject: id,
        message: `restart of ${id} requested by an operator: ${reason}`,
        data: { ...operatorData(request, "restart", reason), zone: placed.zone },
      });
      return {
        process: { id, zone: placed.zone, nonce: result.nonce },
        desiredVersion: result.desiredVersion,
        event: result.event,
      };
    },
  );
}
