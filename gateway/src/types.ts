/** Shared shapes of the gateway: one normalized signal in, one outcome out. */

export type SourceType = "prometheus-alert" | "kubernetes-event";
export type Severity = "critical" | "warning" | "info";
export type Priority = "P0" | "P1" | "P2" | "P3";

export interface ResourceRef {
  kind: string;
  name: string;
  /** Absent for cluster-scoped resources (nodes). */
  namespace?: string;
}

export interface Signal {
  /** Lowercase hex SHA-256 of `signalName:namespace:kind:name`. */
  fingerprint: string;
  signalName: string;
  severity: Severity;
  /** Namespace the signal belongs to ("" for cluster-scoped signals). */
  namespace: string;
  resource: ResourceRef;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  firingTime: string;
  receivedTime: string;
  sourceType: SourceType;
  /** Where it came from: Alertmanager receiver / event source component. */
  source: string;
  /** The raw alert or event, kept for `spec.originalPayload`. */
  rawPayload: unknown;
}

export type OutcomeStatus = "created" | "duplicate" | "storm-aggregated" | "resolved" | "rejected";

/** Per-signal answer (section 1 response fields). */
export interface ProcessResult {
  status: OutcomeStatus;
  message: string;
  fingerprint: string;
  duplicate: boolean;
  remediationRequestName?: string;
  remediationRequestNamespace?: string;
  environment?: string;
  priority?: Priority;
  occurrenceCount?: number;
  firstSeenAt?: string;
  lastSeenAt?: string;
}

/** Turns one normalized signal into an outcome (dedup, storms, CRD creation, audit). */
export interface Pipeline {
  process(signal: Signal, ctx: { requestId: string }): Promise<ProcessResult>;
}

/**
 * A failure the HTTP layer maps to RFC 7807 (section 2). Thrown by the
 * pipeline when a dependency is unusable (503/504) or a policy refuses (403).
 */
export class ProblemError extends Error {
  constructor(
    readonly status: 400 | 401 | 403 | 404 | 405 | 413 | 415 | 429 | 500 | 503 | 504,
    readonly detail: string,
    /** Seconds, for 429/503. */
    readonly retryAfter?: number,
  ) {
    super(detail);
  }
}

/** Validated configuration (section 9). Durations are milliseconds. */
export interface GatewayConfig {
  server: {
    listenAddress: string; // "127.0.0.1:8080"
    bodyLimitBytes: number;
    requestTimeoutMs: number;
  };
  auth: { enabled: boolean; cacheTtlMs: number };
  redis:
    | { mode: "single"; url: string; password?: string }
    | {
        mode: "sentinel";
        sentinels: { host: string; port: number }[];
        masterName: string;
        password?: string;
        /** Announced "host:port" → where to connect instead (ioredis `natMap`). */
        natMap?: Record<string, { host: string; port: number }>;
      };
  kubernetes: { mode: "in-cluster" | "kubeconfig"; kubeconfigPath?: string; requestTimeoutMs: number };
  processing: {
    /** statusWriteRate: status.deduplication writes per second (the budget of the status flusher). */
    deduplication: { ttlMs: number; statusFlushIntervalMs: number; statusWriteRate: number };
    storm: { enabled: boolean; rateThreshold: number; detectionWindowMs: number; aggregationWindowMs: number };
    retry: { maxAttempts: number; initialBackoffMs: number; maxBackoffMs: number };
    environment: { cacheTtlMs: number; overrides: Record<string, string> };
  };
  rateLimit: {
    enabled: boolean;
    requestsPerSecond: number;
    burst: number;
    /** Key clients by the first X-Forwarded-For hop (only behind a trusted proxy). */
    trustForwardedFor?: boolean;
  };
  backpressure: { maxInFlight: number; maxEventLoopLagMs: number; maxEventLoopUtilization: number };
  namespaces: { allow: string[]; deny: string[]; fallbackNamespace: string };
  dataStorage: {
    url: string;
    bufferSize: number;
    batchSize: number;
    flushIntervalMs: number;
    journalDir: string;
    journalMaxBytes: number;
    requestTimeoutMs: number;
  };
  shutdown: { gracePeriodMs: number; drainTimeoutMs: number; auditFlushTimeoutMs: number };
  logLevel: "fatal" | "error" | "warn" | "info" | "debug" | "trace";
}

/** What `createPipeline` (pipeline.ts) hands to the HTTP layer (app.ts / main.ts). */
export interface PipelineRuntime extends Pipeline {
  /** Which dependencies are usable right now (readiness: 503 only when neither is). */
  health(): { redis: boolean; kubernetes: boolean };
  /** Flushes or journals the audit buffer, stops background work, closes Redis. */
  close(): Promise<void>;
}
