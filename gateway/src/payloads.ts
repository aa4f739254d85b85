/**
 * The two accepted request bodies: JSON schemas (validated by fastify before a
 * handler runs) and the TypeScript shapes they guarantee. Limits keep hostile
 * payloads (huge label maps, giant values) out of the pipeline.
 */

export const LIMITS = {
  alertsPerRequest: 1000,
  labels: 100,
  labelNameLength: 256,
  labelValueLength: 1024,
  annotations: 100,
  annotationValueLength: 16_384,
  eventMessageLength: 16_384,
  nameLength: 253,
} as const;

export interface AlertmanagerAlert {
  status?: "firing" | "resolved";
  labels: Record<string, string>;
  annotations?: Record<string, string>;
  startsAt?: string;
  endsAt?: string;
  generatorURL?: string;
  fingerprint?: string;
}

export interface AlertmanagerPayload {
  version?: string;
  groupKey?: string;
  truncatedAlerts?: number;
  status?: "firing" | "resolved";
  receiver?: string;
  groupLabels?: Record<string, string>;
  commonLabels?: Record<string, string>;
  commonAnnotations?: Record<string, string>;
  externalURL?: string;
  alerts: AlertmanagerAlert[];
}

export interface KubernetesEvent {
  type: string;
  reason: string;
  message?: string;
  involvedObject: {
    kind: string;
    name: string;
    namespace?: string;
    uid?: string;
    apiVersion?: string;
    fieldPath?: string;
  };
  firstTimestamp?: string | null;
  lastTimestamp?: string | null;
  eventTime?: string | null;
  count?: number | null;
  source?: { component?: string; host?: string };
  reportingComponent?: string;
  metadata?: {
    name?: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    creationTimestamp?: string;
  };
}

function stringMap(maxEntries: number, maxValueLength: number) {
  return {
    type: "object",
    maxProperties: maxEntries,
    propertyNames: { minLength: 1, maxLength: LIMITS.labelNameLength },
    additionalProperties: { type: "string", maxLength: maxValueLength },
  } as const;
}

const labels = stringMap(LIMITS.labels, LIMITS.labelValueLength);
const annotations = stringMap(LIMITS.annotations, LIMITS.annotationValueLength);
const shortString = { type: "string", maxLength: 2048 } as const;
const status = { type: "string", enum: ["firing", "resolved"] } as const;
const optionalTimestamp = { type: ["string", "null"], maxLength: 64 } as const;

export const alertmanagerSchema = {
  type: "object",
  required: ["alerts"],
  properties: {
    version: { type: "string", enum: ["4"] },
    groupKey: shortString,
    truncatedAlerts: { type: "integer", minimum: 0 },
    status,
    receiver: shortString,
    groupLabels: labels,
    commonLabels: labels,
    commonAnnotations: annotations,
    externalURL: shortString,
    alerts: {
      type: "array",
      minItems: 1,
      maxItems: LIMITS.alertsPerRequest,
      items: {
        type: "object",
        required: ["labels"],
        properties: {
          status,
          labels,
          annotations,
          startsAt: { type: "string", maxLength: 64 },
          endsAt: { type: "string", maxLength: 64 },
          generatorURL: shortString,
          fingerprint: shortString,
        },
      },
    },
  },
} as const;

const name = { type: "string", minLength: 1, maxLength: LIMITS.nameLength } as const;

export const kubernetesEventSchema = {
  type: "object",
  required: ["type", "reason", "involvedObject"],
  properties: {
    type: { type: "string", maxLength: 64 },
    reason: { type: "string", minLength: 1, maxLength: 256 },
    message: { type: "string", maxLength: LIMITS.eventMessageLength },
    involvedObject: {
      type: "object",
      required: ["kind", "name"],
      properties: {
        kind: { type: "string", minLength: 1, maxLength: 256 },
        name,
        namespace: { type: "string", maxLength: 63 },
        uid: shortString,
        apiVersion: shortString,
        fieldPath: shortString,
      },
    },
    firstTimestamp: optionalTimestamp,
    lastTimestamp: optionalTimestamp,
    eventTime: optionalTimestamp,
    count: { type: ["integer", "null"], minimum: 0 },
    source: { type: "object", properties: { component: shortString, host: shortString } },
    reportingComponent: shortString,
    metadata: {
      type: "object",
      properties: {
        name: shortString,
        namespace: { type: "string", maxLength: 63 },
        labels,
        annotations,
        creationTimestamp: { type: "string", maxLength: 64 },
      },
    },
  },
} as const;
