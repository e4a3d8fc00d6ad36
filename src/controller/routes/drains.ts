/**
 * Drains: an operator takes a region, a zone or one instance out of routing until the drain is
 * removed. `GET /v1/drains` (reader token) lists the active ones; `POST /v1/drains` and
 * `DELETE /v1/drains/:id` (operator token) create and remove them. Each change bumps the desired
 * version (so the routing table's version) and appends an event (actor `operator`, the reason and
 * the client's address) in the same transaction; routing streams push the new table at once.
 */
import type { FastifyInstance } from "fastify";
import { RingfenceError } from "../../lib/errors.js";
import type { Drain, DrainTarget } from "../../world/contracts.js";
import { requireRole } from "../auth.js";
import type { ControllerContext } from "../context.js";
import { describeTarget, drainNumber } from "../drains.js";
import { ERROR_RESPONSE, ERROR_RESPONSES } from "../http-errors.js";
import { DRAIN, DRAIN_BODY, param, REASON_BODY } from "../schemas.js";
import { operatorData } from "./operator.js";

/** 404 unless `target` names a region, zone or instance slot of the world's layout. */
function checkTarget(ctx: ControllerContext, target: DrainTarget): void {
  const { index } = ctx;
  const known =
    target.kind === "region"
      ? index.regions.has(target.id)
      : target.kind === "zone"
        ? index.zones.has(target.id)
        : index.instances.has(target.id);
  if (known) return;
  const which =
    target.kind === "region"
      ? `regions are ${[...index.regions].join(", ")}`
      : target.kind === "zone"
        ? `zones are ${[...index.zones].join(", ")}`
        : "instance ids are layout slot ids without the instance: prefix, e.g. " +
          `${index.layout.instances[0]?.id ?? "app/cell-0/us-east/0"} (GET /v1/layout lists them)`;
  throw new RingfenceError("RINGFENCE_NOT_FOUND", `no ${target.kind} ${target.id} in this world; ${which}`, {
    problems: [{ path: "body.target.id", message: `is not a ${target.kind} of this world` }],
  });
}

export function registerDrainRoutes(app: FastifyInstance, ctx: ControllerContext): void {
  const read = requireRole(ctx.tokens, "read");
  const operate = requireRole(ctx.tokens, "operate");

  app.get(
    "/v1/drains",
    {
      onRequest: read,
      schema: {
        response: {
          200: {
            type: "object",
            required: ["drains"],
            properties: { drains: { type: "array", items: DRAIN } },
          },
          ...ERROR_RESPONSES,
        },
      },
    },
    async (): Promise<{ drains: Drain[] }> => ({ drains: await ctx.store.drains() }),
  );

  app.post<{ Body: { target: DrainTarget; reason: string } }>(
    "/v1/drains",
    {
      onRequest: operate,
      schema: { body: DRAIN_BODY, response: { 201: DRAIN, 409: ERROR_RESPONSE, ...ERROR_RESPONSES } },
    },
    async (request, reply) => {
      const { target, reason } = request.body;
      checkTarget(ctx, target);
      const result = await ctx.store.createDrain(target, reason, (drain) => ({
        kind: "drain.created",
        actor: "operator",
        subject: target.id,
        message: `${describeTarget(target)} drained by an operator (${drain.id}): ${reason}`,
        data: operatorData(request, "drain", reason),
      }));
      if (!result.created) {
        const { existing } = result;
        throw new RingfenceError(
          "RINGFENCE_ALREADY_DRAINED",
          existing
            ? `${describeTarget(target)} is already drained by ${existing.id} since ${existing.createdAt} (${existing.reason}); remove it with DELETE /v1/drains/${existing.id} to drain it again`
            : `${describeTarget(target)} was being drained by another request; GET /v1/drains shows the result`,
          {
            problems: [
              { path: "body.target", message: `is already drained${existing ? ` by ${existing.id}` : ""}` },
            ],
          },
        );
      }
      return reply.code(201).send(result.drain);
    },
  );

  app.delete<{ Params: { id: string }; Body: { reason: string } }>(
    "/v1/drains/:id",
    {
      onRequest: operate,
      schema: {
        params: param("id"),
        body: REASON_BODY,
        response: { 200: DRAIN, ...ERROR_RESPONSES },
      },
    },
    async (request): Promise<Drain> => {
      const { id } = request.params;
      const { reason } = request.body;
      const n = drainNumber(id);
      const result =
        n === undefined
          ? undefined
          : await ctx.store.removeDrain(n, (drain) => ({
              kind: "drain.removed",
              actor: "operator",
              subject: drain.target.id,
              message: `${describeTarget(drain.target)} undrained by an operator (${drain.id} removed): ${reason}`,
              data: { ...operatorData(request, "undrain", reason), drainReason: drain.reason },
            }));
      if (!result) {
        throw new RingfenceError(
          "RINGFENCE_NOT_FOUND",
          `no active drain ${id}; drain ids look like drain-3 and GET /v1/drains lists the active ones`,
          { problems: [{ path: "params.id", message: "is not an active drain" }] },
        );
      }
      return result.drain;
    },
  );
}
