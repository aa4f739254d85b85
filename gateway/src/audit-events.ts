import type { RRRef } from "./status-flusher.js";
import type { Signal } from "./types.js";

/** One audit event as Data Storage takes it (section 7). */
export interface AuditEvent {
  version: "1.0";
  event_type: string;
  event_timestamp: string;
  event_category: "gateway";
  event_action: string;
  event_outcome: "success" | "failure" | "pending";
  correlation_id: string;
  event_data: Record<string, unknown>;
  actor_type?: string;
  actor_id?: string;
  resource_type?: string;
  resource_id?: string;
  namespace?: string;
  severity?: string;
  duration_ms?: number;
}

/** What an event says about the signal (a storm request uses its storm fingerprint). */
export type SignalFacts = Pick<Signal, "fingerprint" | "signalName" | "severity" | "namespace" | "sourceType">;

/**
 * correlation_id is the signal fingerprint, not the request id: it is stable
 * across requests, replicas and restarts, so one query returns the whole
 * story of one problem (received, deduplicated, created). The request id is
 * kept in event_data.request_id.
 */
function event(
  type: string,
  action: string,
  outcome: AuditEvent["event_outcome"],
  signal: SignalFacts,
  data: Record<string, unknown>,
  extra: Partial<AuditEvent> = {},
): AuditEvent {
  return {
    version: "1.0",
    event_type: type,
    event_timestamp: new Date().toISOString(),
    event_category: "gateway",
    event_action: action,
    event_outcome: outcome,
    correlation_id: signal.fingerprint,
    event_data: { signal_name: signal.signalName, signal_type: signal.sourceType, ...data },
    actor_type: "service",
    actor_id: "gateway",
    ...(signal.namespace ? { namespace: signal.namespace } : {}),
    severity: signal.severity,
    ...extra,
  };
}

const rrFields = (ref: RRRef) => ({ resource_type: "RemediationRequest", resource_id: `${ref.namespace}/${ref.name}` });

export const auditEvents = {
  received: (signal: Signal, requestId: string) =>
    event("gateway.signal.received", "received", "success", signal, {
      request_id: requestId,
      source: signal.source,
      resource: signal.resource,
    }),

  deduplicated: (signal: Signal, requestId: string, ref: RRRef, occurrenceCount: number) =>
    event(
      "gateway.signal.deduplicated",
      "deduplicated",
      "success",
      signal,
      { request_id: requestId, occurrence_count: occurrenceCount },
      rrFields(ref),
    ),

  stormDetected: (signal: Signal, requestId: string, windowId: string, opened: boolean) =>
    event("gateway.signal.storm_detected", opened ? "storm_opened" : "storm_aggregated", "success", signal, {
      request_id: requestId,
      storm_window: windowId,
      window_opened: opened,
    }),

  crdCreated: (signal: SignalFacts, ref: RRRef, data: Record<string, unknown>, durationMs?: number) =>
    event("gateway.crd.created", "created", "success", signal, data, {
      ...rrFields(ref),
      ...(durationMs !== undefined ? { duration_ms: durationMs } : {}),
    }),

  crdCreationFailed: (
    signal: SignalFacts,
    namespace: string,
    reason: string,
    message: string,
    data: Record<string, unknown>,
  ) =>
    event(
      "gateway.crd.creation_failed",
      "create",
      "failure",
      signal,
      { ...data, reason, error: message.slice(0, 500), target_namespace: namespace },
      {
        resource_type: "RemediationRequest",
      },
    ),
};
