/**
 * Routes for agents and routers (agent token): desired state, agent heartbeats, router heartbeats.
 *
 * A zone id holds a slash (`us-east/a`); clients send it URL-encoded (`us-east%2Fa`), and the
 * two-segment form `/v1/agents/us-east/a/...` is accepted too.
 */
import type { FastifyInstance } from "fastify";
import { RingfenceError } from "../../lib/errors.js";
import type { DesiredState, Heartbeat, RouterReport } from "../../world/contracts.js";
import { requireRole } from "../auth.js";
import type { ControllerContext } from "../context.js";
import { MAX_DESIRED_WAIT_MS } from "../desired-waiters.js";
import { ERROR_RESPONSES } from "../http-errors.js";
import { DESIRED_STATE, HEARTBEAT, param, ROUTER_REPORT } from "../schemas.js";
import type { AgentReport, NewEvent } from "../store.js";

type ZoneParams = { zone?: string; region?: string; name?: string };

const zoneOf = (p: ZoneParams): string => p.zone ?? `${p.region}/${p.name}`;

/** Both spellings of a zone route: `/v1/agents/:zone/x` (encoded) and `/v1/agents/:region/:name/x`. */
const zonePaths = (suffix: string) =>
  [
    [`/v1/agents/:zone/${suffix}`, param("zone")],
    [`/v1/agents/:region/:name/${suffix}`, param("region", "name")],
  ] as const;

function unknownZone(ctx: ControllerContext, zone: string): RingfenceError {
  return new RingfenceError(
    "RINGFENCE_NOT_FOUND",
    `no zone ${zone} in this world; zones are ${[...ctx.index.zones].join(", ")}`,
  );
}

/** Keeps only the fields of a heartbeat the controller knows, so unknown extras are not stored. */
export function agentReport(h: Heartbeat): AgentReport {
  return {
    zone: h.zone,
    pid: h.pid,
    startedAt: h.startedAt,
    desiredVersion: h.desiredVersion,
    ...(h.sentMonoMs === undefined ? {} : { sentMonoMs: h.sentMonoMs }),
    processes: h.processes.map((p) => ({
      id: p.id,
      kind: p.kind,
      state: p.state,
      pid: p.pid,
      restarts: p.restarts,
      health: p.health,
      detail: p.detail,
      since: p.since,
    })),
    observations: (h.observations ?? []).map((o) => ({
      target: o.target,
      ok: o.ok,
      consecutiveFailures: o.consecutiveFailures,
      latencyMs: o.latencyMs,
      detail: o.detail,
      ...(o.ageMs === undefined ? {} : { ageMs: o.ageMs }),
    })),
    databases: h.databases.map((d) => ({
      id: d.id,
      role: d.role,
      lsn: d.lsn,
      flushLsn: d.flushLsn ?? null,
      timeline: d.timeline ?? null,
      synchronousStandbyNames: d.synchronousStandbyNames,
      ...(d.streamingFrom === undefined ? {} : { streamingFrom: d.streamingFrom }),
      standbys: d.standbys.map((s) => ({
        applicationName: s.applicationName,
        state: s.state,
        syncState: s.syncState,
        lagBytes: s.lagBytes,
        flushLagMs: s.flushLagMs,
        replayLagMs: s.replayLagMs,
      })),
    })),
  };
}

export function registerAgentRoutes(app: FastifyInstance, ctx: ControllerContext): void {
  const agent = requireRole(ctx.tokens, "agent");

  for (const [path, params] of zonePaths("desired")) {
    app.get<{ Params: ZoneParams; Querystring: { after?: string; waitMs?: string } }>(
      path,
      {
        onRequest: agent,
        schema: {
          params,
          querystring: {
            type: "object",
            properties: {
              after: { type: "string", pattern: "^[0-9]{1,15}$" },
              waitMs: { type: "string", pattern: "^[0-9]{1,6}$" },
            },
            additionalProperties: false,
          },
          response: { 200: DESIRED_STATE, ...ERROR_RESPONSES },
        },
      },
      async (request): Promise<DesiredState> => {
        const zone = zoneOf(request.params);
        if (!ctx.index.zones.has(zone)) throw unknownZone(ctx, zone);
        const after = request.query.after === undefined ? undefined : Number(request.query.after);
        const waitMs = Math.min(MAX_DESIRED_WAIT_MS, Number(request.query.waitMs ?? 10_000));
        if (after !== undefined) {
          // A long poll: hold the answer until the version moves past `after` (or waitMs).
          const gone = new AbortController();
          request.raw.once("close", () => gone.abort());
          await ctx.desired.until(
            after,
            waitMs,
            async () => (await ctx.store.desired()).desiredVersion,
            gone.signal,
          );
        }
        const desired = await ctx.store.desired();
        const restarts: Record<string, number> = {};
        for (const p of ctx.index.processesIn(zone)) restarts[p.id] = desired.restarts[p.id] ?? 0;
        return {
          version: desired.desiredVersion,
          zone,
          cells: ctx.index.orderCells(desired.cells),
          restarts,
        };
      },
    );
  }

  for (const [path, params] of zonePaths("heartbeat")) {
    app.post<{ Params: ZoneParams; Body: Heartbeat }>(
      path,
      {
        onRequest: agent,
        schema: { params, body: HEARTBEAT, response: { 204: { type: "null" }, ...ERROR_RESPONSES } },
      },
      async (request, reply) => {
        const zone = zoneOf(request.params);
        if (!ctx.index.zones.has(zone)) throw unknownZone(ctx, zone);
        const body = request.body;
        if (body.zone !== zone) {
          throw new RingfenceError(
            "RINGFENCE_BAD_REQUEST",
            `body.zone ${body.zone} does not match the zone in the path (${zone})`,
            { problems: [{ path: "body.zone", message: `must be ${zone}, the zone in the path` }] },
          );
        }
        const actor = `agent:${zone}`;
        const events: NewEvent[] = body.events.map((e) => ({
          at: e.at,
          kind: e.kind,
          actor,
          subject: e.subject,
          message: e.message,
          data: e.data ?? {},
        }));
        const report = agentReport(body);
        // Failover decides on what it has heard, as soon as it hears it: a fence applied, a
        // position or a promotion reported is not held up by the commit of the report and its
        // events to the control database (tens to hundreds of ms on a busy host, at each step of
        // a switchover). Its events may then follow the reconciler's own in the log.
        ctx.evidence.observe(zone, report, ctx.clock());
        ctx.failover.poke();
        await ctx.store.recordAgentHeartbeat(zone, report, events);
        // After the commit, so a stream that rebuilds the table sees this report.
        ctx.routing.heartbeat(zone, report.processes);
        return reply.code(204).send();
      },
    );
  }

  app.post<{ Params: { region: string }; Body: RouterReport }>(
    "/v1/routers/:region/heartbeat",
    {
      onRequest: agent,
      schema: {
        params: param("region"),
        body: ROUTER_REPORT,
        response: { 204: { type: "null" }, ...ERROR_RESPONSES },
      },
    },
    async (request, reply) => {
      const { region } = request.params;
      if (!ctx.index.regions.has(region)) {
        throw new RingfenceError(
          "RINGFENCE_NOT_FOUND",
          `no region ${region} in this world; regions are ${[...ctx.index.regions].join(", ")}`,
        );
      }
      const b = request.body;
      if (b.region !== region) {
        throw new RingfenceError(
          "RINGFENCE_BAD_REQUEST",
          `body.region ${b.region} does not match the region in the path (${region})`,
          { problems: [{ path: "body.region", message: `must be ${region}, the region in the path` }] },
        );
      }
      await ctx.store.recordRouterHeartbeat(region, {
        region,
        pid: b.pid,
        tableVersion: b.tableVersion,
        stale: b.stale,
        requests: b.requests,
        errors: b.errors,
      });
      return reply.code(204).send();
    },
  );
}
