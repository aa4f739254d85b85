import type { FastifyInstance, FastifyRequest } from "fastify";
import { type CachedTokenReviewer, installBearerAuth } from "../auth.js";
import { parseJsonBody } from "../json-body.js";
import type { Metrics } from "../metrics.js";
import { type NormalizedAlert, normalizeAlertmanager, normalizeKubernetesEvent } from "../normalize.js";
import {
  type AlertmanagerPayload,
  alertmanagerSchema,
  type KubernetesEvent,
  kubernetesEventSchema,
} from "../payloads.js";
import { installLoadProtection, namespaceAllowed, type ProtectionOptions } from "../protection.js";
import type { Lifecycle } from "../shutdown.js";
import { type GatewayConfig, type Pipeline, ProblemError, type ProcessResult, type Signal } from "../types.js";

export interface SignalRoutesOptions {
  config: () => GatewayConfig;
  pipeline: Pipeline;
  metrics: Metrics;
  lifecycle: Lifecycle;
  reviewer?: CachedTokenReviewer;
  protection?: Pick<ProtectionOptions, "now" | "eventLoopLagMs" | "eventLoopUtilization">;
}

/** An alert of a batch that could not be processed for a reason retrying will not fix. */
interface FailedResult {
  status: "failed";
  message: string;
  fingerprint: string;
  duplicate: false;
}

type AlertResult = ProcessResult | FailedResult;

const HTTP_STATUS: Record<ProcessResult["status"], number> = {
  created: 201,
  duplicate: 202,
  "storm-aggregated": 202,
  resolved: 200,
  rejected: 200,
};

/** Alerts of one webhook processed at the same time. */
const BATCH_CONCURRENCY = 8;

/** Missing Content-Type is accepted as JSON; anything but application/json (UTF-8) is 415. */
async function requireJsonMediaType(request: FastifyRequest): Promise<void> {
  const header = request.headers["content-type"];
  if (header === undefined) return;
  const [type = "", ...params] = header.split(";");
  const mediaType = type.trim().toLowerCase();
  if (mediaType !== "application/json") {
    const shown = mediaType.length > 100 ? `${mediaType.slice(0, 100)}…` : mediaType;
    throw new ProblemError(415, `Content-Type '${shown}' is not supported; send application/json`);
  }
  const charset = params
    .map((p) => p.trim().toLowerCase())
    .find((p) => p.startsWith("charset="))
    ?.slice("charset=".length)
    .replace(/"/g, "");
  if (charset !== undefined && charset !== "utf-8" && charset !== "utf8") {
    throw new ProblemError(415, "only the UTF-8 charset is supported; send application/json; charset=utf-8");
  }
}

function withDeadline<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const detail = `processing did not finish within ${ms} ms; retrying is safe (duplicates are detected)`;
      reject(new ProblemError(504, detail));
    }, ms);
  });
  return Promise.race([work, expired]).finally(() => clearTimeout(timer));
}

/** Runs `fn` over `items`, at most `limit` at a time, collecting every outcome in order. */
async function settleAll<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>) {
  const outcomes: PromiseSettledResult<R>[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      try {
        outcomes[i] = { status: "fulfilled", value: await fn(items[i] as T) };
      } catch (reason) {
        outcomes[i] = { status: "rejected", reason };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return outcomes;
}

/** Errors a retry will not fix are reported per alert; anything else fails the whole webhook. */
function isPerAlertFailure(err: unknown): err is ProblemError {
  return err instanceof ProblemError && err.status < 500;
}

function summarize(results: AlertResult[]) {
  const count = (status: AlertResult["status"]) => results.filter((r) => r.status === status).length;
  return {
    total: results.length,
    created: count("created"),
    deduplicated: count("duplicate"),
    stormAggregated: count("storm-aggregated"),
    resolved: count("resolved"),
    rejected: count("rejected"),
    failed: count("failed"),
  };
}

/**
 * The signal endpoints (section 1), as one encapsulated plugin: load
 * protection, media type, optional auth and the JSON body parser apply to
 * these routes only, in that order (cheap refusals before any body is read).
 */
export async function signalRoutes(app: FastifyInstance, opts: SignalRoutesOptions): Promise<void> {
  installLoadProtection(app, {
    ...opts.protection,
    config: opts.config,
    metrics: opts.metrics,
    lifecycle: opts.lifecycle,
  });
  app.addHook("onRequest", requireJsonMediaType);
  if (opts.reviewer) installBearerAuth(app, opts.reviewer);
  app.removeAllContentTypeParsers();
  app.addContentTypeParser("*", { parseAs: "buffer" }, (_request, body, done) => {
    try {
      done(null, parseJsonBody(body as Buffer));
    } catch (err) {
      done(err as Error, undefined);
    }
  });

  /** Namespace policy, then the pipeline within the request deadline. */
  const processSignal = (signal: Signal, request: FastifyRequest): Promise<ProcessResult> => {
    const cfg = opts.config();
    if (signal.namespace !== "" && !namespaceAllowed(signal.namespace, cfg.namespaces)) {
      opts.metrics.requestsRejected.inc({ reason: "namespace_denied" });
      const detail = `namespace '${signal.namespace}' is not allowed by the gateway's namespace policy`;
      return Promise.reject(new ProblemError(403, detail));
    }
    return withDeadline(opts.pipeline.process(signal, { requestId: String(request.id) }), cfg.server.requestTimeoutMs);
  };

  app.post<{ Body: AlertmanagerPayload }>(
    "/prometheus",
    { schema: { body: alertmanagerSchema } },
    async (request, reply) => {
      const alerts = normalizeAlertmanager(request.body, new Date().toISOString());
      const handle = ({ signal, resolved }: NormalizedAlert): Promise<ProcessResult> =>
        resolved
          ? Promise.resolve({
              status: "resolved",
              message: "alert is resolved; nothing to remediate",
              fingerprint: signal.fingerprint,
              duplicate: false,
            })
          : processSignal(signal, request);
      if (alerts.length === 1) {
        const result = await handle(alerts[0] as NormalizedAlert);
        return reply.code(HTTP_STATUS[result.status]).send(result);
      }
      const outcomes = await settleAll(alerts, BATCH_CONCURRENCY, handle);
      const fatal = outcomes.findIndex((o) => o.status === "rejected" && !isPerAlertFailure(o.reason));
      if (fatal !== -1) {
        // Retrying the whole webhook is safe: alerts already recorded come back as duplicates.
        const err = (outcomes[fatal] as PromiseRejectedResult).reason;
        if (!(err instanceof ProblemError)) throw err;
        const detail = `alerts[${fatal}] could not be processed: ${err.detail}; retry the whole request (alerts already recorded are deduplicated)`;
        throw new ProblemError(err.status, detail, err.retryAfter);
      }
      const results: AlertResult[] = outcomes.map((o, i) => {
        if (o.status === "fulfilled") return o.value;
        const err = o.reason as ProblemError;
        const fingerprint = (alerts[i] as NormalizedAlert).signal.fingerprint;
        const status = err.status === 403 ? "rejected" : "failed";
        return { status, message: err.detail, fingerprint, duplicate: false } as AlertResult;
      });
      return reply.code(207).send({ results, summary: summarize(results) });
    },
  );

  app.post<{ Body: KubernetesEvent }>(
    "/kubernetes-event",
    { schema: { body: kubernetesEventSchema } },
    async (request, reply) => {
      const result = await processSignal(normalizeKubernetesEvent(request.body, new Date().toISOString()), request);
      return reply.code(HTTP_STATUS[result.status]).send(result);
    },
  );
}
