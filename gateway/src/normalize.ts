import { fingerprint } from "./fingerprint.js";
import type { AlertmanagerPayload, KubernetesEvent } from "./payloads.js";
import { ProblemError, type ResourceRef, type Severity, type Signal } from "./types.js";

/** Section 3: the first of these labels present names the affected resource. */
const RESOURCE_LABELS: readonly [label: string, kind: string][] = [
  ["pod", "Pod"],
  ["deployment", "Deployment"],
  ["statefulset", "StatefulSet"],
  ["daemonset", "DaemonSet"],
  ["node", "Node"],
  ["service", "Service"],
];

/** Kinds without a namespace: their signals are placed in the fallback namespace. */
const CLUSTER_SCOPED_KINDS = new Set(["Node"]);

const SEVERITIES = new Set<Severity>(["critical", "warning", "info"]);

const CRITICAL_EVENT_REASONS = new Set([
  "OOMKilled",
  "NodeNotReady",
  "FailedScheduling",
  "Evicted",
  "FailedMount",
  "NetworkNotReady",
]);

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$/;

function daysInMonth(year: number, month: number): number {
  return new Date(Date.UTC(year, month, 0)).getUTCDate();
}

function isRfc3339(value: string): boolean {
  const m = RFC3339.exec(value);
  if (!m) return false;
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  const inRange = month >= 1 && month <= 12 && day >= 1 && day <= daysInMonth(year, month);
  return inRange && hour <= 23 && minute <= 59 && second <= 59 && !Number.isNaN(Date.parse(value));
}

/** RFC 3339 (what Alertmanager and Kubernetes send) → ISO string; anything else is a 400 naming the field. */
function timestamp(value: string, field: string): string {
  if (!isRfc3339(value)) {
    throw new ProblemError(400, `${field} is not a valid RFC 3339 timestamp (e.g. 2024-05-01T12:00:00Z)`);
  }
  return new Date(Date.parse(value)).toISOString();
}

function nonEmpty(value: string | undefined | null): value is string {
  return typeof value === "string" && value !== "";
}

function severityFromLabel(value: string | undefined): Severity {
  const s = value?.toLowerCase() as Severity | undefined;
  return s && SEVERITIES.has(s) ? s : "warning";
}

function resourceFromLabels(labels: Record<string, string>): { kind: string; name: string } {
  for (const [label, kind] of RESOURCE_LABELS) {
    const name = labels[label];
    if (nonEmpty(name)) return { kind, name };
  }
  return { kind: "Unknown", name: "unknown" };
}

/** Namespace and resource reference; cluster-scoped resources have neither namespace. */
function place(kind: string, name: string, namespace: string): { namespace: string; resource: ResourceRef } {
  if (CLUSTER_SCOPED_KINDS.has(kind)) return { namespace: "", resource: { kind, name } };
  return { namespace, resource: { kind, name, namespace } };
}

export interface NormalizedAlert {
  signal: Signal;
  /** Resolved alerts are reported, never processed. */
  resolved: boolean;
}

/** Every alert of an Alertmanager webhook (schema-validated) → one signal each. */
export function normalizeAlertmanager(payload: AlertmanagerPayload, receivedTime: string): NormalizedAlert[] {
  return payload.alerts.map((alert, i) => {
    const field = `alerts[${i}]`;
    const labels = { ...alert.labels, ...payload.commonLabels };
    const annotations = { ...alert.annotations, ...payload.commonAnnotations };
    const signalName = labels.alertname;
    if (signalName === undefined) throw new ProblemError(400, `${field}.labels.alertname is required`);
    if (signalName === "") throw new ProblemError(400, `${field}.labels.alertname must not be empty`);
    if (alert.endsAt !== undefined) timestamp(alert.endsAt, `${field}.endsAt`);
    const firingTime = alert.startsAt === undefined ? receivedTime : timestamp(alert.startsAt, `${field}.startsAt`);
    const { kind, name } = resourceFromLabels(labels);
    const ns = [labels.namespace, labels.exported_namespace].find(nonEmpty) ?? "default";
    const { namespace, resource } = place(kind, name, ns);
    const signal: Signal = {
      fingerprint: fingerprint(signalName, namespace, kind, name),
      signalName,
      severity: severityFromLabel(labels.severity),
      namespace,
      resource,
      labels,
      annotations,
      firingTime,
      receivedTime,
      sourceType: "prometheus-alert",
      source: nonEmpty(payload.receiver) ? payload.receiver : "alertmanager",
      rawPayload: alert,
    };
    return { signal, resolved: (alert.status ?? payload.status) === "resolved" };
  });
}

/** One Kubernetes Warning/Error event (schema-validated) → one signal. */
export function normalizeKubernetesEvent(event: KubernetesEvent, receivedTime: string): Signal {
  if (event.type !== "Warning" && event.type !== "Error") {
    throw new ProblemError(400, `type '${event.type}' is not processed: only Warning and Error events are accepted`);
  }
  for (const field of ["firstTimestamp", "lastTimestamp", "eventTime"] as const) {
    const value = event[field];
    if (value !== undefined && value !== null) timestamp(value, field);
  }
  if (event.metadata?.creationTimestamp !== undefined) {
    timestamp(event.metadata.creationTimestamp, "metadata.creationTimestamp");
  }
  const { kind, name } = event.involvedObject;
  const ns = [event.involvedObject.namespace, event.metadata?.namespace].find(nonEmpty) ?? "default";
  const { namespace, resource } = place(kind, name, ns);
  const firstSeen = [
    event.firstTimestamp,
    event.eventTime,
    event.metadata?.creationTimestamp,
    event.lastTimestamp,
  ].find(nonEmpty);
  const critical = event.type === "Error" || CRITICAL_EVENT_REASONS.has(event.reason);
  return {
    fingerprint: fingerprint(event.reason, namespace, kind, name),
    signalName: event.reason,
    severity: critical ? "critical" : "warning",
    namespace,
    resource,
    labels: { ...event.metadata?.labels },
    annotations: { ...event.metadata?.annotations, ...(nonEmpty(event.message) ? { message: event.message } : {}) },
    firingTime: firstSeen ? new Date(Date.parse(firstSeen)).toISOString() : receivedTime,
    receivedTime,
    sourceType: "kubernetes-event",
    source: [event.source?.component, event.reportingComponent].find(nonEmpty) ?? "kubernetes",
    rawPayload: event,
  };
}
