import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";

/**
 * Every metric the gateway exposes. The six `gateway_*` names of section 8 are
 * what operators already alert on: keep them exactly. Label values are bounded
 * enums only (never fingerprints or names).
 */
export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const r = [registry];
  // 1 ms .. 5 s, fine enough to read p50/p95/p99.
  const latencyBuckets = [
    0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1, 2.5, 5,
  ];
  return {
    registry,
    alertsReceived: new Counter({
      name: "gateway_alerts_received_total",
      help: "Signals received",
      labelNames: ["source", "severity"],
      registers: r,
    }),
    alertsDeduplicated: new Counter({
      name: "gateway_alerts_deduplicated_total",
      help: "Signals folded into an existing RemediationRequest",
      labelNames: ["source"],
      registers: r,
    }),
    crdCreated: new Counter({
      name: "gateway_crd_created_total",
      help: "RemediationRequests created",
      labelNames: ["priority"],
      registers: r,
    }),
    crdCreationFailures: new Counter({
      name: "gateway_crd_creation_failures_total",
      help: "RemediationRequest creations that failed",
      labelNames: ["reason"],
      registers: r,
    }),
    redisOperations: new Counter({
      name: "gateway_redis_operations_total",
      help: "Redis operations by result",
      labelNames: ["operation", "result"],
      registers: r,
    }),
    processingDuration: new Histogram({
      name: "gateway_processing_duration_seconds",
      help: "Time to process one signal",
      labelNames: ["source", "outcome"],
      buckets: latencyBuckets,
      registers: r,
    }),
    httpRequests: new Counter({
      name: "gateway_http_requests_total",
      help: "HTTP requests by route and status",
      labelNames: ["route", "method", "status"],
      registers: r,
    }),
    httpDuration: new Histogram({
      name: "gateway_http_request_duration_seconds",
      help: "HTTP request duration",
      labelNames: ["route", "method", "status"],
      buckets: latencyBuckets,
      registers: r,
    }),
    httpInFlight: new Gauge({ name: "gateway_http_requests_in_flight", help: "Requests being served", registers: r }),
    redisAvailable: new Gauge({
      name: "gateway_redis_available",
      help: "1 when Redis is usable, 0 when deduplicating via the Kubernetes API",
      registers: r,
    }),
    stormsDetected: new Counter({
      name: "gateway_storms_detected_total",
      help: "Storm aggregation windows opened",
      registers: r,
    }),
    requestsRejected: new Counter({
      name: "gateway_requests_rejected_total",
      help: "Requests refused by load protection or policy",
      labelNames: ["reason"],
      registers: r,
    }),
    auditBufferDepth: new Gauge({
      name: "gateway_audit_buffer_depth",
      help: "Audit events waiting in memory",
      registers: r,
    }),
    auditJournalBytes: new Gauge({
      name: "gateway_audit_journal_bytes",
      help: "Bytes in the on-disk audit journal",
      registers: r,
    }),
    auditEventsDropped: new Counter({
      name: "gateway_audit_events_dropped_total",
      help: "Audit events that could not be kept",
      labelNames: ["reason"],
      registers: r,
    }),
    auditEventsDelivered: new Counter({
      name: "gateway_audit_events_delivered_total",
      help: "Audit events accepted by Data Storage",
      registers: r,
    }),
    configReloads: new Counter({
      name: "gateway_config_reloads_total",
      help: "Configuration reloads by result",
      labelNames: ["result"],
      registers: r,
    }),
    dedupStatusUpdates: new Counter({
      name: "gateway_dedup_status_updates_total",
      help: "Coalesced status.deduplication writes",
      labelNames: ["result"],
      registers: r,
    }),
    dedupStatusBacklog: new Gauge({
      name: "gateway_dedup_status_backlog",
      help: "Requests whose status.deduplication write is waiting for the write budget",
      registers: r,
    }),
    rrIndexEntries: new Gauge({
      name: "gateway_rr_index_entries",
      help: "RemediationRequests held in the in-memory index (list+watch)",
      registers: r,
    }),
    rrIndexSynced: new Gauge({
      name: "gateway_rr_index_synced",
      help: "1 while the RemediationRequest index follows the API server (watch open)",
      registers: r,
    }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
