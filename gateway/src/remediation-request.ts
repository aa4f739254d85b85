import { createHash } from "node:crypto";
import type { Priority, ResourceRef, Signal } from "./types.js";

/** Where the CRD lives (gateway/deploy/base/crd-remediationrequest.yaml). */
export const RR_API = { group: "kubernaut.ai", version: "v1alpha1", plural: "remediationrequests" } as const;

export const LABEL_FINGERPRINT = "kubernaut.ai/signal-fingerprint";
/** Set on requests placed in the fallback namespace: the namespace the signal named. */
export const LABEL_ORIGIN_NAMESPACE = "kubernaut.ai/origin-namespace";
/**
 * A token per creation attempt, so a creator knows its own request when the
 * API server made it without an answer reaching the gateway (a timeout, then 409).
 */
export const ANNOTATION_CREATION_TOKEN = "kubernaut.ai/creation-token";

/** `object` (as built for a POST) with the creation token among its annotations. */
export function stampCreation(object: object, token: string): object {
  const o = object as { metadata?: { annotations?: Record<string, string> } };
  return {
    ...o,
    metadata: { ...o.metadata, annotations: { ...o.metadata?.annotations, [ANNOTATION_CREATION_TOKEN]: token } },
  };
}

const TERMINAL_PHASES = new Set(["Completed", "Failed", "TimedOut", "Skipped", "Cancelled"]);

export interface DeduplicationStatus {
  occurrenceCount: number;
  firstSeenAt: string;
  lastSeenAt: string;
}

/** The fields of a RemediationRequest the gateway reads back. */
export interface RemediationRequestObject {
  metadata: {
    name: string;
    namespace: string;
    resourceVersion?: string;
    creationTimestamp?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  spec: { signalFingerprint: string };
  status?: { overallPhase?: string; deduplication?: DeduplicationStatus };
}

/** No phase yet counts as active: the orchestrator has not picked it up. */
export function isActive(rr: RemediationRequestObject): boolean {
  const phase = rr.status?.overallPhase;
  return phase === undefined || !TERMINAL_PHASES.has(phase);
}

/** A signal aggregated from a storm window (section 5). */
export interface StormFields {
  stormWindowMs: number;
  stormAlertCount: number;
  affectedResources: ResourceRef[];
}

export interface RemediationContent {
  signal: Signal;
  environment: string;
  priority: Priority;
  storm?: StormFields;
}

export interface Placement {
  namespace: string;
  /** The signal's own namespace when the request went to the fallback namespace ("" for cluster-scoped). */
  originNamespace?: string;
}

const clip = (text: string, max: number) => (text.length > max ? text.slice(0, max) : text);

/** A label value: at most 63 characters of [A-Za-z0-9._-], starting and ending alphanumeric. */
export function labelValue(raw: string): string {
  return clip(raw.replace(/[^A-Za-z0-9._-]/g, "-"), 63).replace(/^[^A-Za-z0-9]+|[^A-Za-z0-9]+$/g, "");
}

/**
 * `rr-<first 12 hex>-<suffix>`. The suffix is derived from the fingerprint and
 * a generation number (how many requests for this fingerprint already exist),
 * so two gateways racing to create the same request pick the same name and
 * the API server lets only one win (409): D1 holds even when Redis lost the claim.
 */
export function remediationRequestName(fingerprint: string, generation: number): string {
  const suffix = createHash("sha256").update(`${fingerprint}:${generation}`).digest("hex").slice(0, 8);
  return `rr-${fingerprint.slice(0, 12)}-${suffix}`;
}

/** Go-style duration for `spec.stormWindow` ("60s", "1500ms"). */
export function durationText(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}

/** At most `maxEntries` entries, each value clipped (the CRD bounds maxProperties and maxLength). */
function boundedMap(map: Record<string, string>, maxEntries: number, maxValue: number): Record<string, string> {
  return Object.fromEntries(
    Object.entries(map)
      .slice(0, maxEntries)
      .map(([k, v]) => [k, clip(String(v), maxValue)]),
  );
}

function resourceRef(ref: ResourceRef): ResourceRef {
  return {
    kind: clip(ref.kind, 63) || "Unknown",
    name: clip(ref.name, 253) || "unknown",
    ...(ref.namespace ? { namespace: clip(ref.namespace, 63) } : {}),
  };
}

const MAX_PAYLOAD_BASE64 = 1_048_576;
const MAX_SUMMARY = 1024;

function validTime(value: string, fallback: string): string {
  return Number.isNaN(Date.parse(value)) ? fallback : new Date(value).toISOString();
}

/** The object the gateway POSTs (section 6). Status is written separately (status subresource). */
export function buildRemediationRequest(content: RemediationContent, placement: Placement, name: string) {
  const { signal, environment, priority, storm } = content;
  const labels: Record<string, string> = {
    "app.kubernetes.io/managed-by": "gateway",
    [LABEL_FINGERPRINT]: labelValue(signal.fingerprint),
    "kubernaut.ai/severity": labelValue(signal.severity),
    "kubernaut.ai/priority": labelValue(priority),
    "kubernaut.ai/environment": labelValue(environment),
    "kubernaut.ai/signal-type": labelValue(signal.sourceType),
  };
  if (placement.originNamespace !== undefined) {
    labels[LABEL_ORIGIN_NAMESPACE] = labelValue(placement.originNamespace) || "cluster-scoped";
  }
  const annotations: Record<string, string> = {};
  const summary = signal.annotations.summary ?? signal.annotations.description;
  if (summary) annotations["kubernaut.ai/summary"] = clip(summary, MAX_SUMMARY);

  const payload =
    signal.rawPayload === undefined ? undefined : Buffer.from(JSON.stringify(signal.rawPayload)).toString("base64");
  if (payload !== undefined && payload.length > MAX_PAYLOAD_BASE64)
    annotations["kubernaut.ai/payload-omitted"] = "too-large";

  const receivedTime = validTime(signal.receivedTime, new Date().toISOString());
  return {
    apiVersion: `${RR_API.group}/${RR_API.version}`,
    kind: "RemediationRequest",
    metadata: { name, namespace: placement.namespace, labels, annotations },
    spec: {
      signalFingerprint: signal.fingerprint,
      signalName: clip(signal.signalName, 253),
      severity: signal.severity,
      environment: clip(environment, 63) || "unknown",
      priority,
      signalType: signal.sourceType,
      signalSource: clip(signal.source, 253) || "unknown",
      targetType: "kubernetes",
      targetResource: resourceRef(signal.resource),
      firingTime: validTime(signal.firingTime, receivedTime),
      receivedTime,
      signalLabels: boundedMap(signal.labels, 256, 4096),
      signalAnnotations: boundedMap(signal.annotations, 256, 32_768),
      ...(payload !== undefined && payload.length <= MAX_PAYLOAD_BASE64 ? { originalPayload: payload } : {}),
      ...(storm
        ? {
            isStorm: true,
            stormType: "rate",
            stormWindow: durationText(storm.stormWindowMs),
            stormAlertCount: Math.min(storm.stormAlertCount, 2_147_483_647),
            affectedResources: storm.affectedResources.slice(0, 1000).map(resourceRef),
          }
        : {}),
    },
  };
}
