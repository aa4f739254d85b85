import type { Bounds, FieldType } from "./config-values.js";

/**
 * Every configuration setting, described once: YAML path, type, default (as
 * written in YAML), bounds, whether a reload applies it, its environment
 * override and what it does. The loader, the reload logic and the README
 * reference (config-reference.ts) are all driven by this table.
 *
 * In `GatewayConfig` a duration field `x` becomes `xMs` and a size field `x`
 * becomes `xBytes` (the loader does the conversion).
 */
export interface FieldSpec extends Bounds {
  path: string;
  type: FieldType;
  default: string | number | boolean | readonly string[] | Record<string, string>;
  reloadable: boolean;
  env?: string;
  /** Never echoed in errors or logs. */
  secret?: boolean;
  description: string;
}

export const CONFIG_FIELDS: readonly FieldSpec[] = [
  // --- server
  {
    path: "server.listenAddress",
    type: "address",
    default: "0.0.0.0:8080",
    reloadable: false,
    env: "GATEWAY_LISTEN_ADDRESS",
    description: "Address the HTTP server listens on.",
  },
  {
    path: "server.bodyLimit",
    type: "size",
    default: "256KiB",
    min: "1KiB",
    max: "16MiB",
    reloadable: false,
    description: "Largest accepted request body; larger bodies get 413.",
  },
  {
    path: "server.requestTimeout",
    type: "duration",
    default: "30s",
    min: "1s",
    max: "5m",
    reloadable: false,
    description: "Deadline for receiving a request and for processing one signal (504 beyond it).",
  },
  // --- auth
  {
    path: "auth.enabled",
    type: "boolean",
    default: false,
    reloadable: false,
    description: "Require a bearer token checked with a Kubernetes TokenReview.",
  },
  {
    path: "auth.cacheTtl",
    type: "duration",
    default: "10s",
    min: "0s",
    max: "10m",
    reloadable: false,
    description: "How long a TokenReview answer is reused.",
  },
  // --- redis
  {
    path: "redis.mode",
    type: "enum",
    values: ["single", "sentinel"],
    default: "single",
    reloadable: false,
    description: "One Redis server, or a Sentinel group.",
  },
  {
    path: "redis.url",
    type: "redis-url",
    default: "redis://127.0.0.1:6379",
    reloadable: false,
    env: "GATEWAY_REDIS_URL",
    description: "Redis server (mode single).",
  },
  {
    path: "redis.sentinels",
    type: "host-port-list",
    default: [],
    reloadable: false,
    env: "GATEWAY_REDIS_SENTINELS",
    description: "Sentinel addresses (mode sentinel); env form: comma-separated host:port.",
  },
  {
    path: "redis.masterName",
    type: "string",
    default: "mymaster",
    reloadable: false,
    env: "GATEWAY_REDIS_MASTER_NAME",
    description: "Name of the monitored master (mode sentinel).",
  },
  {
    path: "redis.natMap",
    type: "host-port-map",
    default: {},
    reloadable: false,
    description:
      "Mode sentinel, for Sentinel behind NAT or a proxy: the address to connect to instead of each address a " +
      "sentinel announces (master, replicas, other sentinels), such as {'10.0.0.7:6379': '127.0.0.1:16379'}; " +
      "addresses not listed are used as announced. YAML only: maps have no environment form.",
  },
  {
    path: "redis.password",
    type: "string",
    default: "",
    secret: true,
    reloadable: false,
    env: "GATEWAY_REDIS_PASSWORD",
    description: "Redis password (empty: none). Prefer the environment variable.",
  },
  // --- kubernetes
  {
    path: "kubernetes.mode",
    type: "enum",
    values: ["in-cluster", "kubeconfig"],
    default: "kubeconfig",
    reloadable: false,
    description: "Service-account credentials of the pod, or a kubeconfig file.",
  },
  {
    path: "kubernetes.kubeconfigPath",
    type: "path",
    default: "",
    reloadable: false,
    env: "GATEWAY_KUBECONFIG",
    description: "Kubeconfig file (mode kubeconfig); empty: KUBECONFIG, ~/.kube/config, then in-cluster.",
  },
  {
    path: "kubernetes.requestTimeout",
    type: "duration",
    default: "10s",
    min: "100ms",
    max: "5m",
    reloadable: false,
    description: "Deadline of one Kubernetes API call.",
  },
  // --- processing
  {
    path: "processing.deduplication.ttl",
    type: "duration",
    default: "5m",
    min: "10s",
    max: "24h",
    reloadable: true,
    description: "How long a fingerprint is remembered after its last occurrence.",
  },
  {
    path: "processing.deduplication.statusFlushInterval",
    type: "duration",
    default: "1s",
    min: "100ms",
    max: "1m",
    reloadable: false,
    description:
      "How long a changed occurrence count waits before it is written to status.deduplication: the " +
      "duplicates of a busy request within it become one write.",
  },
  {
    path: "processing.deduplication.statusWriteRate",
    type: "integer",
    default: 50,
    min: 1,
    max: 10_000,
    reloadable: true,
    description:
      "Budget of the gateway's writes to the Kubernetes API per second for RemediationRequests: occurrence " +
      "counts (status.deduplication) get what creations leave of it, at least a fifth, paced and oldest change " +
      "first, each with its latest count. Counts converge within a few seconds at normal load, and within " +
      "(requests waiting / rate) seconds after a heavy run (gateway_dedup_status_backlog).",
  },
  {
    path: "processing.storm.enabled",
    type: "boolean",
    default: true,
    reloadable: true,
    description: "Fold alert storms into one aggregated RemediationRequest.",
  },
  {
    path: "processing.storm.rateThreshold",
    type: "integer",
    default: 10,
    min: 2,
    max: 100_000,
    reloadable: true,
    description: "Signals of one name in one namespace within the detection window that start a storm.",
  },
  {
    path: "processing.storm.detectionWindow",
    type: "duration",
    default: "1m",
    min: "1s",
    max: "1h",
    reloadable: true,
    description: "Window over which the storm rate is counted.",
  },
  {
    path: "processing.storm.aggregationWindow",
    type: "duration",
    default: "1m",
    min: "1s",
    max: "1h",
    reloadable: true,
    description: "How long a storm collects signals before its RemediationRequest is created.",
  },
  {
    path: "processing.retry.maxAttempts",
    type: "integer",
    default: 3,
    min: 1,
    max: 10,
    reloadable: true,
    description: "Attempts to create a RemediationRequest on 429/5xx/timeouts.",
  },
  {
    path: "processing.retry.initialBackoff",
    type: "duration",
    default: "100ms",
    min: "10ms",
    max: "10s",
    reloadable: true,
    description: "First retry delay; doubles per attempt.",
  },
  {
    path: "processing.retry.maxBackoff",
    type: "duration",
    default: "5s",
    min: "10ms",
    max: "1m",
    reloadable: true,
    description: "Cap of the retry delay.",
  },
  {
    path: "processing.environment.cacheTtl",
    type: "duration",
    default: "30s",
    min: "1s",
    max: "1h",
    reloadable: true,
    description: "How long a Namespace's environment label is cached.",
  },
  {
    path: "processing.environment.overrides",
    type: "string-map",
    default: {},
    reloadable: true,
    description: "Environment per namespace when the Namespace has no environment label.",
  },
  // --- load protection
  {
    path: "rateLimit.enabled",
    type: "boolean",
    default: true,
    reloadable: true,
    description: "Token-bucket rate limit per client (429 beyond it).",
  },
  {
    path: "rateLimit.requestsPerSecond",
    type: "number",
    default: 100,
    min: 0.01,
    max: 1_000_000,
    reloadable: true,
    description: "Sustained requests per second per client.",
  },
  {
    path: "rateLimit.burst",
    type: "integer",
    default: 200,
    min: 1,
    max: 1_000_000,
    reloadable: true,
    description: "Requests a client may send at once before the rate applies.",
  },
  {
    path: "rateLimit.trustForwardedFor",
    type: "boolean",
    default: false,
    reloadable: true,
    description: "Key clients by the first X-Forwarded-For hop; only behind a trusted proxy.",
  },
  {
    path: "backpressure.maxInFlight",
    type: "integer",
    default: 500,
    min: 1,
    max: 100_000,
    reloadable: true,
    description: "Signal requests served at once; beyond it 503 with Retry-After.",
  },
  {
    path: "backpressure.maxEventLoopLag",
    type: "duration",
    default: "1s",
    min: "10ms",
    max: "1m",
    reloadable: true,
    description: "Event-loop delay (p99) beyond which requests are shed with 503.",
  },
  {
    path: "backpressure.maxEventLoopUtilization",
    type: "number",
    default: 1,
    min: 0.5,
    max: 1,
    reloadable: true,
    description:
      "Share of the last 200 ms the event loop was busy beyond which requests are shed with 503 (1: off). Below 1 (e.g. 0.9) where a CPU limit is tight: it also sheds a warming-up process.",
  },
  // --- namespaces
  {
    path: "namespaces.allow",
    type: "namespace-list",
    default: [],
    reloadable: true,
    description: "Namespaces whose signals are accepted (empty: all). A trailing * matches a prefix.",
  },
  {
    path: "namespaces.deny",
    type: "namespace-list",
    default: [],
    reloadable: true,
    description: "Namespaces whose signals are refused with 403 (wins over allow).",
  },
  {
    path: "namespaces.fallbackNamespace",
    type: "namespace",
    default: "kubernaut-system",
    reloadable: true,
    description: "Where RemediationRequests for cluster-scoped or missing namespaces go.",
  },
  // --- audit (Data Storage)
  {
    path: "dataStorage.url",
    type: "http-url",
    default: "http://127.0.0.1:8085",
    reloadable: false,
    env: "GATEWAY_DATA_STORAGE_URL",
    description: "Data Storage service receiving audit events.",
  },
  {
    path: "dataStorage.bufferSize",
    type: "integer",
    default: 10_000,
    min: 100,
    max: 1_000_000,
    reloadable: true,
    description: "Audit events held in memory before spilling to the journal.",
  },
  {
    path: "dataStorage.batchSize",
    type: "integer",
    default: 1000,
    min: 1,
    max: 10_000,
    reloadable: true,
    description: "Audit events sent per batch.",
  },
  {
    path: "dataStorage.flushInterval",
    type: "duration",
    default: "1s",
    min: "50ms",
    max: "1m",
    reloadable: false,
    description: "How often the audit buffer is flushed.",
  },
  {
    path: "dataStorage.journalDir",
    type: "path",
    default: "data/audit-journal",
    reloadable: false,
    env: "GATEWAY_AUDIT_JOURNAL_DIR",
    description: "Directory of the on-disk audit journal (relative to the working directory).",
  },
  {
    path: "dataStorage.journalMax",
    type: "size",
    default: "256MiB",
    min: "1MiB",
    max: "100GiB",
    reloadable: true,
    description: "Largest size of the audit journal; beyond it events are dropped and counted.",
  },
  {
    path: "dataStorage.requestTimeout",
    type: "duration",
    default: "5s",
    min: "100ms",
    max: "1m",
    reloadable: false,
    description: "Deadline of one Data Storage call.",
  },
  // --- shutdown
  {
    path: "shutdown.gracePeriod",
    type: "duration",
    default: "5s",
    min: "0s",
    max: "2m",
    reloadable: true,
    description: "After SIGTERM: readiness 503 while still serving, so load balancers move away.",
  },
  {
    path: "shutdown.drainTimeout",
    type: "duration",
    default: "30s",
    min: "1s",
    max: "10m",
    reloadable: true,
    description: "Longest wait for in-flight requests after the grace period.",
  },
  {
    path: "shutdown.auditFlushTimeout",
    type: "duration",
    default: "10s",
    min: "1s",
    max: "5m",
    reloadable: true,
    description: "Longest wait for the audit buffer to flush (or be journaled) on shutdown.",
  },
  // --- logging
  {
    path: "logLevel",
    type: "enum",
    values: ["fatal", "error", "warn", "info", "debug", "trace"],
    default: "info",
    reloadable: true,
    env: "GATEWAY_LOG_LEVEL",
    description: "Level of the JSON logs.",
  },
];
