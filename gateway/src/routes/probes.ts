import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { Metrics } from "../metrics.js";
import { sendProblem } from "../problem.js";
import type { Lifecycle } from "../shutdown.js";
import type { Pipeline, PipelineRuntime } from "../types.js";

export interface ProbeRoutesOptions {
  pipeline: Pipeline & Partial<PipelineRuntime>;
  metrics: Metrics;
  lifecycle: Lifecycle;
}

const statusSchema = {
  response: { 200: { type: "object", properties: { status: { type: "string" } }, additionalProperties: true } },
} as const;

/** Liveness, readiness and the Prometheus exposition (section 1). */
export async function probeRoutes(app: FastifyInstance, opts: ProbeRoutesOptions): Promise<void> {
  const live = async () => ({ status: "healthy" });
  app.get("/healthz", { schema: statusSchema }, live);
  app.get("/health", { schema: statusSchema }, live);

  // Ready unless shutting down or neither dedup backend (Redis, Kubernetes API) is usable.
  const ready = async (request: FastifyRequest, reply: FastifyReply) => {
    if (opts.lifecycle.phase !== "serving") {
      return sendProblem(request, reply, 503, "the gateway is shutting down");
    }
    const health = opts.pipeline.health?.() ?? { redis: true, kubernetes: true };
    if (!health.redis && !health.kubernetes) {
      return sendProblem(request, reply, 503, "neither Redis nor the Kubernetes API is usable");
    }
    return { status: "ready", ...health };
  };
  app.get("/readyz", { schema: statusSchema }, ready);
  app.get("/ready", { schema: statusSchema }, ready);

  app.get("/metrics", async (_request, reply) => {
    reply.type(opts.metrics.registry.contentType);
    return opts.metrics.registry.metrics();
  });
}
