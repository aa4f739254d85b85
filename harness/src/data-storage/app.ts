import { STATUS_CODES } from "node:http";
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from "fastify";
import { ValidationError, validateBatch, validateEvent } from "./events.js";
import { FAULT_MODES, type FaultMode, type FaultSwitch } from "./fault.js";
import type { EventQuery, EventStore } from "./store.js";

/** A stalled write is answered 503 after this long, so nothing hangs forever. */
export const STALL_LIMIT_MS = 60_000;

const MAX_QUERY_LIMIT = 10_000;

/** Slugs as in the gateway contract (section 2); other statuses use their HTTP reason phrase. */
function problemSlug(status: number): string {
  if (status === 400) return "validation-error";
  if (status === 500) return "internal-error";
  return (STATUS_CODES[status] ?? "error").toLowerCase().replace(/[^a-z]+/g, "-");
}

/** Sends an RFC 7807 problem. */
function problem(
  reply: FastifyReply,
  request: FastifyRequest,
  status: number,
  detail: string,
  extra: Record<string, unknown> = {},
): FastifyReply {
  if (status === 503) reply.header("Retry-After", "1");
  return reply
    .code(status)
    .type("application/problem+json")
    .send({
      type: `https://kubernaut.ai/problems/${problemSlug(status)}`,
      title: STATUS_CODES[status] ?? "Error",
      status,
      detail,
      instance: request.url.split("?")[0],
      ...extra,
    });
}

function parseEventQuery(raw: Record<string, unknown>): EventQuery {
  const query: EventQuery = {};
  for (const [key, value] of Object.entries(raw)) {
    if (typeof value !== "string") throw new ValidationError(key, "must be given once");
    if (key === "correlation_id" || key === "event_type") query[key] = value;
    else if (key === "limit") {
      const limit = Number(value);
      if (!/^\d+$/.test(value) || limit < 1 || limit > MAX_QUERY_LIMIT) {
        throw new ValidationError("limit", `must be an integer between 1 and ${MAX_QUERY_LIMIT} (got: ${value})`);
      }
      query.limit = limit;
    } else throw new ValidationError(key, "is not a supported filter (use correlation_id, event_type, limit)");
  }
  return query;
}

function parseFault(raw: unknown): { mode: FaultMode; status: number } {
  const body = (typeof raw === "object" && raw !== null ? raw : {}) as { mode?: unknown; status?: unknown };
  if (!FAULT_MODES.includes(body.mode as FaultMode)) {
    throw new ValidationError("mode", `must be one of ${FAULT_MODES.join(", ")}`);
  }
  const status = body.status ?? 503;
  if (!Number.isInteger(status) || (status as number) < 500 || (status as number) > 599) {
    throw new ValidationError("status", `must be a 5xx status code (got: ${JSON.stringify(status)})`);
  }
  return { mode: body.mode as FaultMode, status: status as number };
}

/** The Data Storage stand-in's HTTP API: audit writes and reads, stats, health, fault control. */
export function buildApp(store: EventStore, fault: FaultSwitch): FastifyInstance {
  const app = Fastify({ logger: { level: "info" }, bodyLimit: 16 * 1024 * 1024 });

  // Fault injection applies to audit writes only; reads stay up so tests can inspect.
  const gate = async (request: FastifyRequest, reply: FastifyReply) => {
    if (fault.current.mode === "stall") {
      if (!(await fault.waitOutStall(STALL_LIMIT_MS))) {
        return problem(reply, request, 503, `audit writes stalled by fault injection for ${STALL_LIMIT_MS} ms`);
      }
      // A caller that gave up during the stall (a client timeout, typically long
      // before the release) gets nothing stored: it will retry. Best effort: a
      // disconnect racing the release may not be seen yet.
      if (request.raw.socket.destroyed) return problem(reply, request, 503, "caller went away during the stall");
    }
    const { mode, status } = fault.current;
    if (mode === "fail") return problem(reply, request, status, "audit writes are failing by fault injection");
  };

  // Shutdown must not wait for stalled writes or for kept-alive connections of
  // requests that finish during it: answer 503 and close each connection.
  let closing = false;
  app.addHook("preClose", async () => {
    closing = true;
    fault.set({ mode: "fail", status: 503 });
  });
  app.addHook("onSend", async (_request, reply) => {
    if (closing) reply.header("Connection", "close");
  });

  app.setErrorHandler((err: FastifyError, request, reply) => {
    if (err instanceof ValidationError) return problem(reply, request, 400, err.message, { field: err.field });
    const status = err.statusCode && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500;
    if (status === 500) request.log.error(err, "request failed");
    return problem(reply, request, status, status === 500 ? `storage error: ${err.message}` : err.message);
  });
  app.setNotFoundHandler((request, reply) =>
    problem(reply, request, 404, `no route for ${request.method} ${request.url}`),
  );

  app.post("/api/v1/audit/events/batch", { preHandler: gate }, async (request, reply) => {
    const events = validateBatch(request.body);
    return reply.code(201).send({ event_ids: await store.insert(events) });
  });
  app.post("/api/v1/audit/events", { preHandler: gate }, async (request, reply) => {
    const [eventId] = await store.insert([validateEvent(request.body)]);
    return reply.code(201).send({ event_id: eventId });
  });
  app.get("/api/v1/audit/events", async (request) => ({
    events: await store.find(parseEventQuery(request.query as Record<string, unknown>)),
  }));
  app.get("/api/v1/audit/stats", async () => store.stats());
  app.get("/healthz", async () => ({ status: "ok" }));
  app.get("/admin/fault", async () => fault.current);
  app.post("/admin/fault", async (request) => {
    const state = parseFault(request.body);
    request.log.info({ fault: state }, "fault mode changed");
    fault.set(state);
    return fault.current;
  });
  return app;
}
