import { AuditTrail } from "./audit.js";
import { auditEvents } from "./audit-events.js";
import { type Claim, Deduplicator, type Occurrences } from "./dedup.js";
import { failureReason, KubeApiError, KubeClient, loadKubeConfig, UncertainCreationError } from "./kube.js";
import type { Log } from "./log.js";
import type { Metrics } from "./metrics.js";
import { NamespaceDirectory } from "./namespaces.js";
import { priorityFor } from "./priority.js";
import { RedisLink, RedisUnavailableError } from "./redis-link.js";
import { buildRemediationRequest, type Placement, type RemediationRequestObject } from "./remediation-request.js";
import { RemediationRequestIndex } from "./rr-index.js";
import { type RRRef, StatusFlusher } from "./status-flusher.js";
import { StormDetector } from "./storm.js";
import {
  type GatewayConfig,
  type PipelineRuntime,
  type Priority,
  ProblemError,
  type ProcessResult,
  type Signal,
} from "./types.js";

export interface PipelineDeps {
  /** Read per signal, so a reload applies between requests. */
  config: () => GatewayConfig;
  metrics: Metrics;
  log: Log;
}

/** What one signal is about once environment, priority and placement are known. */
interface Context {
  signal: Signal;
  requestId: string;
  cfg: GatewayConfig;
  environment: string;
  priority: Priority;
  placement: Placement;
  /** The processing deadline: aborts a little before the request's, so a creation gives up and settles its claim first. */
  deadline: AbortSignal;
}

/** How much earlier than the request deadline the pipeline gives up: time to settle the claim before the 504. */
const SETTLE_MARGIN_MS = 250;

/** A dependency failure as the HTTP layer answers it (section 2). */
function problemFor(err: unknown): ProblemError {
  if (err instanceof ProblemError) return err;
  if (err instanceof KubeApiError) {
    if (err.reason === "timeout") return new ProblemError(504, `Kubernetes API did not answer in time: ${err.message}`);
    if (err.reason === "invalid")
      return new ProblemError(500, `Kubernetes API rejected the RemediationRequest: ${err.message}`);
    return new ProblemError(503, `Kubernetes API call failed: ${err.message}`, 5);
  }
  if (err instanceof RedisUnavailableError)
    return new ProblemError(503, `deduplication store unavailable: ${err.message}`, 2);
  return new ProblemError(500, "internal error while processing the signal");
}

/**
 * The signal pipeline (sections 3-7): environment and priority, dedup
 * check-and-claim, storm check for new fingerprints, RemediationRequest
 * creation, audit events for each decision. Duplicates are answered from
 * Redis alone; the Kubernetes API sees only creations (checked against an
 * in-memory index of the requests, kept by list+watch) and the coalesced
 * status writes.
 */
export async function createPipeline(deps: PipelineDeps): Promise<PipelineRuntime> {
  const { config, metrics, log } = deps;
  const cfg = config();
  const kube = new KubeClient(loadKubeConfig(cfg.kubernetes), { config, log });
  const index = new RemediationRequestIndex(kube, metrics, log);
  const redis = new RedisLink(cfg.redis, metrics, log);
  const flusher = new StatusFlusher(redis, kube, metrics, log, config);
  const dedup = new Deduplicator(redis, kube, index, flusher, log);
  // Before Redis counts as available again; repairs first, so the hashes point at their requests when the
  // degraded-mode counts are added to them.
  redis.onRecovery(() => dedup.repair());
  redis.onRecovery(() => flusher.settleDebts());
  const namespaces = new NamespaceDirectory(kube, log);
  const audit = new AuditTrail(config, metrics, log);
  const storms = new StormDetector({ redis, kube, index, namespaces, flusher, audit, metrics, log, config });
  // Ready once the index follows the API server; if it cannot yet, lookups go to the API server meanwhile.
  await index.start(Math.min(cfg.kubernetes.requestTimeoutMs, 5_000));
  audit.start();
  flusher.start();
  storms.start();

  const duplicate = (ctx: Context, ref: RRRef, seen: Occurrences): ProcessResult => {
    metrics.alertsDeduplicated.inc({ source: ctx.signal.sourceType });
    audit.record(auditEvents.deduplicated(ctx.signal, ctx.requestId, ref, seen.occurrenceCount));
    return {
      status: "duplicate",
      message: `duplicate of RemediationRequest ${ref.namespace}/${ref.name}`,
      fingerprint: ctx.signal.fingerprint,
      duplicate: true,
      remediationRequestName: ref.name,
      remediationRequestNamespace: ref.namespace,
      environment: ctx.environment,
      priority: ctx.priority,
      occurrenceCount: seen.occurrenceCount,
      firstSeenAt: seen.firstSeenAt,
      lastSeenAt: seen.lastSeenAt,
    };
  };

  const aggregated = (ctx: Context, windowId: string, opened: boolean): ProcessResult => {
    audit.record(auditEvents.stormDetected(ctx.signal, ctx.requestId, windowId, opened));
    return {
      status: "storm-aggregated",
      message: `part of an alert storm of ${ctx.signal.signalName}; one RemediationRequest is created when the aggregation window closes`,
      fingerprint: ctx.signal.fingerprint,
      duplicate: false,
      environment: ctx.environment,
      priority: ctx.priority,
    };
  };

  /** Creates (or adopts) the request in the placement namespace; a vanished namespace moves it to the fallback. */
  const createOrAdopt = async (ctx: Context, claim: Claim) => {
    const attempt = (placement: Placement, known: RemediationRequestObject[] | undefined) =>
      kube.createOrAdopt({
        namespace: placement.namespace,
        fingerprint: ctx.signal.fingerprint,
        build: (name) =>
          buildRemediationRequest(
            { signal: ctx.signal, environment: ctx.environment, priority: ctx.priority },
            placement,
            name,
          ),
        known: known ?? index.lookup(placement.namespace, ctx.signal.fingerprint),
        orphans: claim.orphans,
        signal: ctx.deadline,
      });
    try {
      return await attempt(ctx.placement, claim.known);
    } catch (err) {
      const missing =
        err instanceof KubeApiError && err.reason === "not_found" && ctx.placement.originNamespace === undefined;
      if (!missing || ctx.placement.namespace === ctx.cfg.namespaces.fallbackNamespace) throw err;
      namespaces.markMissing(ctx.placement.namespace, ctx.cfg);
      ctx.placement = { namespace: ctx.cfg.namespaces.fallbackNamespace, originNamespace: ctx.signal.namespace };
      return attempt(ctx.placement, undefined);
    }
  };

  const firstSighting = async (ctx: Context, claim: Claim): Promise<ProcessResult> => {
    const { signal, cfg } = ctx;
    try {
      if (cfg.processing.storm.enabled) {
        const storm = await storms.check(signal, ctx.environment, ctx.priority, cfg);
        if (storm) {
          await claim
            .foldIntoStorm(storm.windowId, storm.inRedis)
            .catch((err) =>
              log.warn(
                { err: (err as Error).message },
                "storm member not recorded in Redis; it is counted in the window",
              ),
            );
          return aggregated(ctx, storm.windowId, storm.opened);
        }
      }
      const started = performance.now();
      const { created, rr } = await createOrAdopt(ctx, claim);
      const seen = await claim.commit(rr, !created);
      const ref = { namespace: rr.metadata.namespace, name: rr.metadata.name };
      if (!created) return duplicate(ctx, ref, seen);
      metrics.crdCreated.inc({ priority: ctx.priority });
      audit.record(
        auditEvents.crdCreated(
          signal,
          ref,
          { request_id: ctx.requestId, environment: ctx.environment, priority: ctx.priority },
          performance.now() - started,
        ),
      );
      return {
        status: "created",
        message: `RemediationRequest ${ref.namespace}/${ref.name} created`,
        fingerprint: signal.fingerprint,
        duplicate: false,
        remediationRequestName: ref.name,
        remediationRequestNamespace: ref.namespace,
        environment: ctx.environment,
        priority: ctx.priority,
      };
    } catch (err) {
      await claim.release(err instanceof UncertainCreationError ? err.token : undefined);
      metrics.crdCreationFailures.inc({ reason: failureReason(err) });
      audit.record(
        auditEvents.crdCreationFailed(signal, ctx.placement.namespace, failureReason(err), (err as Error).message, {
          request_id: ctx.requestId,
        }),
      );
      log.warn({ fingerprint: signal.fingerprint, err: (err as Error).message }, "RemediationRequest not created");
      throw err;
    }
  };

  const decide = async (ctx: Context, retried = false): Promise<ProcessResult> => {
    const sighting = await dedup.sight(ctx.signal, ctx.placement.namespace, ctx.cfg);
    if (sighting.kind === "duplicate") return duplicate(ctx, sighting.ref, sighting);
    if (sighting.kind === "new") return firstSighting(ctx, sighting.claim);
    if (sighting.kind === "storm-member") {
      return sighting.ref ? duplicate(ctx, sighting.ref, sighting) : aggregated(ctx, sighting.windowId, false);
    }
    // The window's record is gone: forget the fingerprint and see it afresh (once).
    if (retried) throw new ProblemError(503, "storm window state was lost; retry", 1);
    await dedup.forget(ctx.signal.fingerprint);
    return decide(ctx, true);
  };

  return {
    async process(signal, { requestId }) {
      const started = performance.now();
      const cfg = config();
      metrics.alertsReceived.inc({ source: signal.sourceType, severity: signal.severity });
      audit.record(auditEvents.received(signal, requestId));
      let outcome = "failed";
      try {
        const deadline = AbortSignal.timeout(Math.max(0, cfg.server.requestTimeoutMs - SETTLE_MARGIN_MS));
        const environment = await namespaces.environment(signal.namespace, cfg);
        const placement = await namespaces.placement(signal.namespace, cfg);
        if (deadline.aborted)
          throw new ProblemError(504, "the namespace lookups took the whole processing deadline; retrying is safe");
        const ctx: Context = {
          signal,
          requestId,
          cfg,
          environment,
          priority: priorityFor(signal.severity, environment),
          placement,
          deadline,
        };
        const result = await decide(ctx);
        outcome = result.status;
        return result;
      } catch (err) {
        const problem = problemFor(err);
        if (problem.status >= 500 && !(err instanceof ProblemError || err instanceof KubeApiError)) {
          log.error({ err, fingerprint: signal.fingerprint }, "signal processing failed");
        }
        throw problem;
      } finally {
        metrics.processingDuration.observe(
          { source: signal.sourceType, outcome },
          (performance.now() - started) / 1000,
        );
      }
    },

    health: () => ({ redis: redis.available(), kubernetes: kube.healthy() }),

    async close() {
      await storms.close();
      await index.close();
      await flusher.close();
      await audit.close();
      await redis.close();
      await kube.close();
    },
  };
}
