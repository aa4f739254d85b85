import { createHash } from "node:crypto";
import type { AuditTrail } from "./audit.js";
import { auditEvents } from "./audit-events.js";
import { failureReason, type KubeClient } from "./kube.js";
import type { Log } from "./log.js";
import type { Metrics } from "./metrics.js";
import type { NamespaceDirectory } from "./namespaces.js";
import { Periodic } from "./periodic.js";
import { type RedisLink, RedisUnavailableError } from "./redis-link.js";
import { buildRemediationRequest } from "./remediation-request.js";
import type { RemediationRequestIndex } from "./rr-index.js";
import { refText, type StatusFlusher } from "./status-flusher.js";
import {
  type DueWindow,
  MemoryStormStore,
  RedisStormStore,
  type StormCheck,
  type StormStore,
  windowKey,
} from "./storm-store.js";
import type { GatewayConfig, Priority, Signal } from "./types.js";

const sha256 = (text: string) => createHash("sha256").update(text).digest("hex");

/** The fingerprint of a storm request: one per namespace and signal name, so one storm is one request (D1). */
export const stormFingerprint = (namespace: string, signalName: string) =>
  sha256(`storm:rate:${namespace}:${signalName}`);

/** Windows are per namespace and signal name; hashed so arbitrary names make bounded keys. */
const scopeOf = (namespace: string, signalName: string) => sha256(`${namespace}\u0000${signalName}`).slice(0, 16);

const CLOSE_INTERVAL_MS = 500;
/** A closer owns a due window this long; if it dies, another replica closes it. */
const CLOSE_LEASE_MS = 60_000;
const MAX_RETRY_DELAY_MS = 30_000;

export interface StormDeps {
  redis: RedisLink;
  kube: KubeClient;
  index: RemediationRequestIndex;
  namespaces: NamespaceDirectory;
  flusher: StatusFlusher;
  audit: AuditTrail;
  metrics: Metrics;
  log: Log;
  config: () => GatewayConfig;
}

/**
 * Rate storms (section 5): more than rateThreshold new fingerprints of one
 * signal name in one namespace within the detection window open an
 * aggregation window; signals in it are folded in, and when it closes one
 * RemediationRequest with isStorm stands for all of them. State lives in
 * Redis (shared by replicas), in memory while Redis is unreachable. Any
 * failure of the detection itself lets the signal through individually.
 */
export class StormDetector {
  private readonly redisStore: RedisStormStore;
  private readonly memoryStore = new MemoryStormStore();
  private readonly failures = new Map<string, number>();
  private readonly loop = new Periodic(
    () => CLOSE_INTERVAL_MS,
    () => this.closeDue(Date.now()),
  );

  constructor(private readonly deps: StormDeps) {
    this.redisStore = new RedisStormStore(deps.redis);
  }

  async check(signal: Signal, environment: string, priority: Priority, cfg: GatewayConfig) {
    const storm = cfg.processing.storm;
    const c: StormCheck = {
      scope: scopeOf(signal.namespace, signal.signalName),
      fingerprint: signal.fingerprint,
      resource: signal.resource,
      template: { signal: { ...signal, rawPayload: undefined }, environment, priority },
      nowMs: Date.now(),
      detectionWindowMs: storm.detectionWindowMs,
      rateThreshold: storm.rateThreshold,
      aggregationWindowMs: storm.aggregationWindowMs,
      keepMs: storm.aggregationWindowMs + cfg.processing.deduplication.ttlMs,
      ttlMs: cfg.processing.deduplication.ttlMs,
    };
    try {
      const decision = await this.inAnyStore(c);
      if (decision?.opened) {
        this.deps.metrics.stormsDetected.inc();
        this.deps.log.info(
          { namespace: signal.namespace, signalName: signal.signalName, window: decision.windowId },
          "storm detected; aggregating",
        );
      }
      return decision;
    } catch (err) {
      this.deps.log.warn({ err: (err as Error).message }, "storm detection failed; signal processed individually");
      return null;
    }
  }

  /** `inRedis`: the window is in Redis, which already points the signal's dedup hash at it. */
  private async inAnyStore(c: StormCheck): Promise<{ windowId: string; opened: boolean; inRedis: boolean } | null> {
    if (this.deps.redis.available()) {
      try {
        const decision = await this.redisStore.check(c);
        return decision && { ...decision, inRedis: true };
      } catch (err) {
        if (!(err instanceof RedisUnavailableError)) throw err;
      }
    }
    const decision = await this.memoryStore.check(c);
    return decision && { ...decision, inRedis: false };
  }

  start(): void {
    this.loop.start();
  }

  /** Windows held only in this process are closed now rather than lost; Redis windows stay for the others. */
  async close(): Promise<void> {
    await this.loop.stop();
    await this.closeStore(this.memoryStore, Number.POSITIVE_INFINITY);
  }

  private async closeDue(now: number): Promise<void> {
    if (this.deps.redis.available()) await this.closeStore(this.redisStore, now);
    await this.closeStore(this.memoryStore, now);
  }

  private async closeStore(store: StormStore, now: number): Promise<void> {
    let due: DueWindow[];
    try {
      due = await store.claimDue(now, CLOSE_LEASE_MS);
    } catch (err) {
      this.deps.log.debug({ err: (err as Error).message }, "storm windows not checked this pass");
      return;
    }
    for (const window of due) await this.closeWindow(store, window);
  }

  private async closeWindow(store: StormStore, w: DueWindow): Promise<void> {
    const cfg = this.deps.config();
    const { signal: opener, environment, priority } = w.template;
    const fingerprint = stormFingerprint(opener.namespace, opener.signalName);
    const signal: Signal = {
      ...opener,
      fingerprint,
      resource: w.resources[0] ?? opener.resource,
      firingTime: w.occurrences.firstSeenAt,
      receivedTime: new Date().toISOString(),
    };
    const storm = {
      stormWindowMs: cfg.processing.storm.aggregationWindowMs,
      stormAlertCount: w.occurrences.occurrenceCount,
      affectedResources: w.resources,
    };
    const data = {
      storm_window: w.id,
      storm_alert_count: storm.stormAlertCount,
      affected_resources: w.resources.length,
    };
    let namespace = opener.namespace;
    try {
      const placement = await this.deps.namespaces.placement(opener.namespace, cfg);
      namespace = placement.namespace;
      const { created, rr } = await this.deps.kube.createOrAdopt({
        namespace,
        fingerprint,
        build: (name) => buildRemediationRequest({ signal, environment, priority, storm }, placement, name),
        known: this.deps.index.lookup(namespace, fingerprint),
      });
      const ref = { namespace: rr.metadata.namespace, name: rr.metadata.name };
      const existing = created ? undefined : rr.status?.deduplication;
      const keepMs = cfg.processing.storm.aggregationWindowMs + cfg.processing.deduplication.ttlMs;
      await store.record(w.id, refText(ref), existing?.occurrenceCount ?? 0, existing?.firstSeenAt ?? "", keepMs);
      if (created) this.deps.flusher.initial(windowKey(w.id), rr, w.occurrences);
      // Repeats of members since the window was read are in the Redis count: written after the initial status.
      if (store === this.redisStore) this.deps.flusher.touch(windowKey(w.id));
      else if (!created)
        this.deps.flusher.addOccurrences(ref, windowKey(w.id), w.occurrences.lastSeenAt, w.occurrences.occurrenceCount);
      this.failures.delete(w.id);
      if (created) {
        this.deps.metrics.crdCreated.inc({ priority });
        this.deps.audit.record(auditEvents.crdCreated(signal, ref, data));
      }
      this.deps.log.info({ ref: refText(ref), created, alerts: storm.stormAlertCount }, "storm window closed");
    } catch (err) {
      const attempt = (this.failures.get(w.id) ?? 0) + 1;
      this.failures.set(w.id, attempt);
      this.deps.metrics.crdCreationFailures.inc({ reason: failureReason(err) });
      this.deps.audit.record(
        auditEvents.crdCreationFailed(signal, namespace, failureReason(err), (err as Error).message, data),
      );
      this.deps.log.warn({ window: w.id, attempt, err: (err as Error).message }, "storm request not created; retrying");
      await store.retryLater(w.id, Date.now() + Math.min(1_000 * 2 ** attempt, MAX_RETRY_DELAY_MS)).catch(() => {});
    }
  }
}
