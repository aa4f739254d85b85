// The operators' dashboard: the six metrics of the seed's "Production monitoring strategy" with
// its recommended alerting thresholds, then everything else the gateway exports
// (gateway/src/metrics.ts, prom-client's default process metrics).
import * as units from "@grafana/grafana-foundation-sdk/units";
import { Board, figure, graph, type Limits, orZero, quantile, rate, SIGNAL_ROUTES } from "./shared.js";

/** The seed's "Alerting Thresholds (Recommended)", in the panels' units. */
export const SEED_LIMITS = {
  p95Seconds: { warning: 0.1, critical: 0.2 },
  creationFailureRatio: { warning: 0.01, critical: 0.05 },
  alertsPerSecond: { warning: 800, critical: 1000 },
} satisfies Record<string, Limits>;

const RECEIVED = "gateway_alerts_received_total";
const DEDUPLICATED = "gateway_alerts_deduplicated_total";
const CREATED = "gateway_crd_created_total";
const FAILED = "gateway_crd_creation_failures_total";
const REDIS_OPS = "gateway_redis_operations_total";
const PROCESSING = "gateway_processing_duration_seconds";

const throughput = rate(RECEIVED);
const dedupRatio = `${orZero(rate(DEDUPLICATED), throughput)} / ${throughput}`;
const failed = orZero(rate(FAILED), rate(CREATED));
const creationFailureRatio = `${failed} / (${failed} + ${orZero(rate(CREATED), rate(FAILED))})`;

/**
 * Keeps the series of gateway processes only: the default process metrics carry no name of their
 * own, and Prometheus may scrape other Node.js processes too.
 */
const ofGateway = (expr: string) => `${expr} and on (job, instance) gateway_http_requests_in_flight`;

/** Panels the chaos dashboard shows too. */
export const gatewayPanels = {
  availability: (width: number) =>
    graph({
      title: "Redis available and RemediationRequest index synced",
      description:
        "1 while Redis is usable (0: deduplicating through the Kubernetes API); 1 while the in-memory RemediationRequest index follows the API server.",
      unit: units.BoolYesNo,
      min: 0,
      max: 1,
      width,
      queries: [
        { expr: "min by (instance) (gateway_redis_available)", legend: "Redis {{instance}}" },
        { expr: "min by (instance) (gateway_rr_index_synced)", legend: "index {{instance}}" },
      ],
    }),
  refusals: (width: number) =>
    graph({
      title: "Shed and rate-limited",
      description:
        "gateway_requests_rejected_total by reason: overloaded (503: in-flight, event-loop lag or utilization bound), rate_limited (429), namespace_denied, shutting_down; beside all signal requests.",
      unit: units.RequestsPerSecond,
      width,
      queries: [
        { expr: rate("gateway_requests_rejected_total", "reason"), legend: "{{reason}}" },
        { expr: rate(`gateway_http_requests_total{${SIGNAL_ROUTES}}`), legend: "all signal requests" },
      ],
    }),
  auditJournal: (width: number) =>
    graph({
      title: "Audit journal",
      description: "Bytes in the on-disk audit journal: it grows while Data Storage does not take the events.",
      unit: units.BytesIEC,
      width,
      queries: [{ expr: "sum(gateway_audit_journal_bytes)", legend: "journal" }],
    }),
};

export function gatewayDashboard() {
  return new Board(
    "kubernaut-gateway",
    "Kubernaut gateway",
    "The gateway's metrics: the six the operators alert on (with the recommended thresholds), signals, RemediationRequests, latency, HTTP, load protection, Redis, audit and the process.",
  )
    .row(
      "Operator metrics",
      figure({
        title: "Throughput",
        description: "Alerts received per second (gateway_alerts_received_total). Warning 800/s, critical 1000/s.",
        unit: units.EventsPerSecond,
        width: 4,
        limits: SEED_LIMITS.alertsPerSecond,
        queries: [{ expr: throughput }],
      }),
      figure({
        title: "Deduplicated",
        description: "Share of received alerts folded into an existing RemediationRequest.",
        unit: units.PercentUnit,
        width: 4,
        queries: [{ expr: dedupRatio }],
      }),
      figure({
        title: "RemediationRequests created",
        description: "gateway_crd_created_total per second.",
        unit: units.EventsPerSecond,
        width: 4,
        queries: [{ expr: rate(CREATED) }],
      }),
      figure({
        title: "Creation failures",
        description: "Failed share of RemediationRequest creations. Warning 1 %, critical 5 %.",
        unit: units.PercentUnit,
        width: 4,
        limits: SEED_LIMITS.creationFailureRatio,
        queries: [{ expr: creationFailureRatio }],
      }),
      figure({
        title: "Redis operations succeeded",
        description: "Share of gateway_redis_operations_total with result success.",
        unit: units.PercentUnit,
        width: 4,
        queries: [{ expr: `${orZero(rate(`${REDIS_OPS}{result="success"}`), rate(REDIS_OPS))} / ${rate(REDIS_OPS)}` }],
      }),
      figure({
        title: "Processing p95",
        description:
          "p95 of gateway_processing_duration_seconds over every source and outcome. Warning 100 ms, critical 200 ms.",
        unit: units.Seconds,
        width: 4,
        limits: SEED_LIMITS.p95Seconds,
        queries: [{ expr: quantile(0.95, PROCESSING) }],
      }),
    )
    .row(
      "Signals",
      graph({
        title: "Alerts received by source and severity",
        description: "The total carries the seed's throughput thresholds (800/s warning, 1000/s critical).",
        unit: units.EventsPerSecond,
        width: 8,
        limits: SEED_LIMITS.alertsPerSecond,
        queries: [
          { expr: rate(RECEIVED, "source, severity"), legend: "{{source}} {{severity}}" },
          { expr: throughput, legend: "all" },
        ],
      }),
      graph({
        title: "Deduplication ratio",
        description: "Share of received alerts that were duplicates of an existing RemediationRequest.",
        unit: units.PercentUnit,
        min: 0,
        max: 1,
        width: 8,
        queries: [
          { expr: `${rate(DEDUPLICATED, "source")} / ${rate(RECEIVED, "source")}`, legend: "{{source}}" },
          { expr: dedupRatio, legend: "all" },
        ],
      }),
      graph({
        title: "Storms and configuration reloads",
        description: "Storm aggregation windows opened and configuration reloads by result, per minute.",
        unit: units.EventsPerMinute,
        width: 8,
        queries: [
          { expr: "sum(increase(gateway_storms_detected_total[1m]))", legend: "storm windows opened" },
          { expr: "sum by (result) (increase(gateway_config_reloads_total[1m]))", legend: "config reload {{result}}" },
        ],
      }),
    )
    .row(
      "RemediationRequests",
      graph({
        title: "RemediationRequests created and creation failures",
        description: "Created by priority, failed by reason (gateway_crd_creation_failures_total).",
        unit: units.EventsPerSecond,
        width: 12,
        queries: [
          { expr: rate(CREATED, "priority"), legend: "created {{priority}}" },
          { expr: rate(FAILED, "reason"), legend: "failed: {{reason}}" },
        ],
      }),
      graph({
        title: "Creation failure ratio",
        description: "Failed share of RemediationRequest creations. Warning 1 %, critical 5 %.",
        unit: units.PercentUnit,
        min: 0,
        width: 12,
        limits: SEED_LIMITS.creationFailureRatio,
        queries: [{ expr: creationFailureRatio, legend: "failed share" }],
      }),
    )
    .row(
      "Processing latency",
      ...([0.5, 0.95, 0.99] as const).map((q) =>
        graph({
          title: `Processing p${q * 100} by source and outcome`,
          description:
            q === 0.95
              ? "gateway_processing_duration_seconds; the seed's p95 thresholds: 100 ms warning, 200 ms critical."
              : "gateway_processing_duration_seconds: the time to process one signal.",
          unit: units.Seconds,
          width: 8,
          limits: q === 0.95 ? SEED_LIMITS.p95Seconds : undefined,
          queries: [{ expr: quantile(q, PROCESSING, "", "source, outcome"), legend: "{{source}} {{outcome}}" }],
        }),
      ),
    )
    .row(
      "HTTP",
      graph({
        title: "HTTP requests by route and status",
        description: "gateway_http_requests_total.",
        unit: units.RequestsPerSecond,
        width: 12,
        queries: [{ expr: rate("gateway_http_requests_total", "route, status"), legend: "{{route}} {{status}}" }],
      }),
      graph({
        title: "HTTP p99 by route",
        description: "gateway_http_request_duration_seconds: from the request's arrival to its answer.",
        unit: units.Seconds,
        width: 12,
        queries: [{ expr: quantile(0.99, "gateway_http_request_duration_seconds", "", "route"), legend: "{{route}}" }],
      }),
    )
    .row(
      "Load protection",
      graph({
        title: "Requests in flight",
        description:
          "gateway_http_requests_in_flight: what the in-flight bound (backpressure.maxInFlight) is checked against.",
        unit: units.Short,
        width: 12,
        queries: [{ expr: "sum(gateway_http_requests_in_flight)", legend: "in flight" }],
      }),
      gatewayPanels.refusals(12),
    )
    .row(
      "Redis",
      gatewayPanels.availability(12),
      graph({
        title: "Redis operations by result",
        description: "gateway_redis_operations_total: success, retry, error, unavailable, skipped, unconfirmed.",
        unit: units.OpsPerSecond,
        width: 12,
        queries: [{ expr: rate(REDIS_OPS, "result"), legend: "{{result}}" }],
      }),
    )
    .row(
      "Audit",
      graph({
        title: "Audit buffer",
        description: "gateway_audit_buffer_depth: audit events waiting in memory.",
        unit: units.Short,
        width: 8,
        queries: [{ expr: "sum(gateway_audit_buffer_depth)", legend: "events in memory" }],
      }),
      gatewayPanels.auditJournal(8),
      graph({
        title: "Audit events delivered and dropped",
        description: "Accepted by Data Storage, and dropped by reason (gateway_audit_events_dropped_total).",
        unit: units.EventsPerSecond,
        width: 8,
        queries: [
          { expr: rate("gateway_audit_events_delivered_total"), legend: "delivered" },
          { expr: rate("gateway_audit_events_dropped_total", "reason"), legend: "dropped: {{reason}}" },
        ],
      }),
    )
    .row(
      "Process",
      graph({
        title: "CPU",
        description: "CPU time per second of each gateway process: 100 % is one core.",
        unit: units.PercentUnit,
        width: 8,
        queries: [
          {
            expr: `sum by (instance) (${ofGateway("rate(process_cpu_seconds_total[$__rate_interval])")})`,
            legend: "{{instance}}",
          },
        ],
      }),
      graph({
        title: "Memory",
        description: "Resident set size and V8 heap in use of each gateway process.",
        unit: units.BytesIEC,
        width: 8,
        queries: [
          {
            expr: `sum by (instance) (${ofGateway("process_resident_memory_bytes")})`,
            legend: "RSS {{instance}}",
          },
          { expr: `sum by (instance) (${ofGateway("nodejs_heap_size_used_bytes")})`, legend: "heap {{instance}}" },
        ],
      }),
      graph({
        title: "Event-loop lag",
        description: "prom-client's event-loop delay between two scrapes: p99 and mean.",
        unit: units.Seconds,
        width: 8,
        queries: [
          { expr: `max by (instance) (${ofGateway("nodejs_eventloop_lag_p99_seconds")})`, legend: "p99 {{instance}}" },
          {
            expr: `max by (instance) (${ofGateway("nodejs_eventloop_lag_mean_seconds")})`,
            legend: "mean {{instance}}",
          },
        ],
      }),
    )
    .build();
}
