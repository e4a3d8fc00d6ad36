/**
 * How the controller API answers errors: every failure becomes `{ error: { code, message, retryable,
 * problems } }` with a `RINGFENCE_*` code and its registry status, so clients match on the code.
 */
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { type ErrorCode, type Problem, RingfenceError } from "../lib/errors.js";

/** The JSON schema of an error response, shared by every route. */
export const ERROR_RESPONSE = {
  type: "object",
  required: ["error"],
  properties: {
    error: {
      type: "object",
      required: ["code", "message"],
      properties: {
        code: { type: "string" },
        message: { type: "string" },
        retryable: { type: "boolean" },
        problems: {
          type: "array",
          items: {
            type: "object",
            required: ["path", "message"],
            properties: { path: { type: "string" }, message: { type: "string" } },
          },
        },
      },
    },
  },
} as const;

/** Response schemas for the error statuses every authenticated route can answer with. */
export const ERROR_RESPONSES = {
  400: ERROR_RESPONSE,
  401: ERROR_RESPONSE,
  403: ERROR_RESPONSE,
  404: ERROR_RESPONSE,
  503: ERROR_RESPONSE,
} as const;

interface AjvError {
  instancePath: string;
  keyword: string;
  message?: string;
  params: Record<string, unknown>;
}

/** `body.processes[0].id` from the validation context `body` and the JSON pointer `/processes/0/id`. */
export function problemPath(context: string, instancePath: string, extra?: string): string {
  let path = context;
  const parts = instancePath
    .split("/")
    .slice(1)
    .map((p) => p.replace(/~1/g, "/").replace(/~0/g, "~"));
  if (extra !== undefined) parts.push(extra);
  for (const part of parts) path += /^\d+$/.test(part) ? `[${part}]` : path === "" ? part : `.${part}`;
  return path;
}

/** One located problem per schema violation, naming the field the way a client wrote it. */
export function validationProblems(context: string, errors: readonly AjvError[]): Problem[] {
  return errors.map((e) => {
    if (e.keyword === "required") {
      return {
        path: problemPath(context, e.instancePath, String(e.params.missingProperty)),
        message: "is required",
      };
    }
    if (e.keyword === "additionalProperties") {
      return {
        path: problemPath(context, e.instancePath, String(e.params.additionalProperty)),
        message: "is not a known field; remove it",
      };
    }
    return { path: problemPath(context, e.instancePath), message: e.message ?? e.keyword };
  });
}

/** Maps anything thrown in a request to a `RingfenceError`. */
export function toRingfenceError(err: unknown): RingfenceError {
  if (err instanceof RingfenceError) return err;
  const e = err as Partial<FastifyError> & { validation?: AjvError[]; validationContext?: string };
  if (Array.isArray(e.validation)) {
    const problems = validationProblems(e.validationContext ?? "body", e.validation);
    const first = problems[0];
    const message = first ? `${first.path} ${first.message}` : "the request is malformed";
    return new RingfenceError("RINGFENCE_BAD_REQUEST", message, { problems });
  }
  const status = typeof e.statusCode === "number" ? e.statusCode : 500;
  const code: ErrorCode | undefined =
    status === 413
      ? "RINGFENCE_PAYLOAD_TOO_LARGE"
      : status === 415
        ? "RINGFENCE_UNSUPPORTED_MEDIA_TYPE"
        : status === 404
          ? "RINGFENCE_NOT_FOUND"
          : status >= 400 && status < 500
            ? "RINGFENCE_BAD_REQUEST"
            : undefined;
  if (code === undefined) {
    return new RingfenceError("RINGFENCE_INTERNAL", "internal error in the controller; see its log", {
      cause: err,
    });
  }
  const message = e.message ?? "the request is malformed";
  const problems = e.code?.startsWith("FST_ERR_CTP_") ? [{ path: "body", message }] : [];
  return new RingfenceError(code, message, { problems, cause: err });
}

/** Sends `err` as the API's error shape, with the headers its status calls for. */
export function sendError(reply: FastifyReply, err: RingfenceError): FastifyReply {
  if (err.code === "RINGFENCE_UNAUTHORIZED") reply.header("www-authenticate", 'Bearer realm="ringfence"');
  if (err.retryable) reply.header("retry-after", "1");
  return reply.code(err.status).send({
    error: {
      code: err.code,
      message: err.message,
      retryable: err.retryable,
      problems: err.problems.map((p) => ({ path: p.path, message: p.message })),
    },
  });
}

/** Installs the error and not-found handlers on `app`. */
export function installErrorHandlers(app: FastifyInstance): void {
  app.setErrorHandler((err: unknown, request: FastifyRequest, reply: FastifyReply) => {
    const mapped = toRingfenceError(err);
    if (mapped.status >= 500) request.log.error({ err }, mapped.message);
    return sendError(reply, mapped);
  });
  app.setNotFoundHandler((request: FastifyRequest, reply: FastifyReply) =>
    sendError(
      reply,
      new RingfenceError(
        "RINGFENCE_NOT_FOUND",
        `no route ${request.method} ${request.url.split("?")[0]}; the API lives under /v1 (zone ids are URL-encoded: us-east%2Fa)`,
      ),
    ),
  );
}
