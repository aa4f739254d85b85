import { randomUUID } from "node:crypto";
import Fastify, { type FastifyBaseLogger, type FastifyInstance, LogController } from "fastify";
import type { CachedTokenReviewer } from "./auth.js";
import type { Metrics } from "./metrics.js";
import { installProblemHandling } from "./problem.js";
import type { ProtectionOptions } from "./protection.js";
import { probeRoutes } from "./routes/probes.js";
import { signalRoutes } from "./routes/signals.js";
import { Lifecycle } from "./shutdown.js";
import type { GatewayConfig, Pipeline, PipelineRuntime } from "./types.js";

export interface AppOptions {
  /** Current configuration; read per request so reloads apply between requests. */
  config: () => GatewayConfig;
  pipeline: Pipeline & Partial<PipelineRuntime>;
  metrics: Metrics;
  /** A pino logger; none means silent (unit tests). */
  logger?: FastifyBaseLogger;
  /** Bearer authentication via TokenReview; absent means open. */
  auth?: CachedTokenReviewer;
  lifecycle?: Lifecycle;
  /** Test seams for load protection (clock, event-loop lag). */
  protection?: Pick<ProtectionOptions, "now" | "eventLoopLagMs" | "eventLoopUtilization">;
}

const SECURITY_HEADERS: [string, string][] = [
  ["x-content-type-options", "nosniff"],
  ["x-frame-options", "DENY"],
  ["content-security-policy", "default-src 'none'"],
  ["referrer-policy", "no-referrer"],
];

/** A caller's X-Request-ID is echoed only if it is a sane token (it ends up in logs). */
const CALLER_REQUEST_ID = /^[\w.:@+=/-]{1,128}$/;

function requestId(raw: { headers: Record<string, string | string[] | undefined> }): string {
  const given = raw.headers["x-request-id"];
  return typeof given === "string" && CALLER_REQUEST_ID.test(given) ? given : randomUUID();
}

/**
 * Request id and security headers on every response; HTTP metrics for every
 * request. Once closing, responses end their keep-alive connection so the
 * drain finishes when the last in-flight request does.
 */
function installResponseConventions(app: FastifyInstance, metrics: Metrics, lifecycle: Lifecycle): void {
  app.addHook("onRequest", (_request, reply, done) => {
    metrics.httpInFlight.inc();
    reply.raw.once("close", () => metrics.httpInFlight.dec());
    done();
  });
  app.addHook("onSend", (request, reply, payload, done) => {
    reply.header("x-request-id", request.id);
    for (const [name, value] of SECURITY_HEADERS) reply.header(name, value);
    if (lifecycle.phase === "closing") reply.header("connection", "close");
    done(null, payload);
  });
  app.addHook("onResponse", (request, reply, done) => {
    const labels = { route: request.routeOptions.url ?? "unmatched", method: request.method, status: reply.statusCode };
    metrics.httpRequests.inc(labels);
    metrics.httpDuration.observe(labels, reply.elapsedTime / 1000);
    request.log.debug({ ...labels, ms: Math.round(reply.elapsedTime) }, "request completed");
    done();
  });
}

/**
 * The gateway's HTTP side as a fastify instance (usable with `app.inject()`):
 * conventions and problem handling at the root, probes and signal routes as
 * encapsulated plugins.
 */
export function buildApp(opts: AppOptions): FastifyInstance {
  const cfg = opts.config();
  const lifecycle = opts.lifecycle ?? new Lifecycle();
  const app = Fastify({
    ...(opts.logger ? { loggerInstance: opts.logger } : { logger: false }),
    bodyLimit: cfg.server.bodyLimitBytes,
    requestTimeout: cfg.server.requestTimeoutMs,
    genReqId: requestId,
    requestIdHeader: false,
    // Per-request log lines would dominate at 1000 req/s; onResponse logs at debug instead.
    logController: new LogController({ requestIdLogLabel: "request_id", disableRequestLogging: true }),
    // Shutdown answers are ours (problem+json with Retry-After), see protection.ts.
    return503OnClosing: false,
    // Label values must stay strings and numbers must stay numbers: no coercion, no silent removal.
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, useDefaults: false, allErrors: false } },
  }) as unknown as FastifyInstance;

  installProblemHandling(app, { bodyLimit: cfg.server.bodyLimitBytes });
  installResponseConventions(app, opts.metrics, lifecycle);
  // Bodies sent to routes that take none (or to unknown paths) are read within the limit and ignored.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser("*", { parseAs: "buffer" }, (_request, _body, done) => done(null, undefined));

  app.register(probeRoutes, { pipeline: opts.pipeline, metrics: opts.metrics, lifecycle });
  app.register(signalRoutes, {
    prefix: "/api/v1/signals",
    config: opts.config,
    pipeline: opts.pipeline,
    metrics: opts.metrics,
    lifecycle,
    reviewer: opts.auth,
    protection: opts.protection,
  });
  return app;
}
