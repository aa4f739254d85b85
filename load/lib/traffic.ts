// The shared traffic model of the load suites: which signal the gateway receives at iteration i.
// Pure and seeded, so a run is reproducible and the accounting can replay what was sent.
// It runs inside k6 too: no Node APIs here.
import { mixSeed, Stream } from "./random.ts";

/** Namespaces the traffic uses; the stack pre-creates them. */
export const NAMESPACES = ["load-a", "load-b", "load-c", "load-d", "load-e"] as const;
export const PROMETHEUS_PATH = "/api/v1/signals/prometheus";
export const KUBERNETES_EVENT_PATH = "/api/v1/signals/kubernetes-event";

export type SignalKind = "prometheus" | "kubernetes-event";

export interface TrafficConfig {
  seed: number;
  /** Active fingerprints at any time; most requests repeat one of them. */
  poolSize: number;
  /** Share of requests that carry a fingerprint never sent before (pool members rotate to keep it steady). */
  newShare: number;
  /** Share of pool members that arrive as Kubernetes Warning events instead of Alertmanager webhooks. */
  kubernetesEventShare: number;
  /** Share of webhook pool members that are alert groups of 2-4 pods of one alertname (answered 207). */
  multiAlertShare: number;
  /** A storm starts once in every `stormEvery` iterations (0: no storms). */
  stormEvery: number;
  /** Iterations a storm lasts. */
  stormLength: number;
  /** Share of requests during a storm that belong to it. */
  stormShare: number;
  /** Base of the timestamps in the payloads. */
  startTimeMs: number;
}

/** What the gateway fingerprints: SHA-256 of `input` (signalName:namespace:kind:name). */
export interface FingerprintInput {
  signalName: string;
  namespace: string;
  kind: string;
  name: string;
  input: string;
}

export interface SignalRequest {
  kind: SignalKind;
  path: string;
  body: string;
  meta: {
    iteration: number;
    source: "pool" | "storm";
    /** One entry per alert in the payload, in payload order. */
    fingerprints: FingerprintInput[];
  };
}

export const DEFAULT_TRAFFIC: TrafficConfig = {
  seed: 1,
  poolSize: 3000,
  newShare: 0.02,
  kubernetesEventShare: 0.15,
  multiAlertShare: 0.03,
  stormEvery: 30_000,
  stormLength: 400,
  stormShare: 0.5,
  startTimeMs: Date.UTC(2026, 0, 1),
};

// 10 x 20 alert names: enough (alertname, namespace) pairs that new pool members stay under the
// gateway's storm threshold; only the deliberate storms cross it.
const AREAS = ["Api", "Checkout", "Payments", "Search", "Inventory", "Auth", "Billing", "Catalog", "Ingest", "Notify"];
const SYMPTOMS = [
  "HighLatency",
  "ErrorRateHigh",
  "PodCrashLooping",
  "MemoryPressure",
  "CpuThrottling",
  "DiskAlmostFull",
  "ReplicasMismatch",
  "JobFailed",
  "CertificateExpiring",
  "TargetDown",
  "QueueBacklog",
  "ConnectionPoolExhausted",
  "OomRisk",
  "RestartsHigh",
  "SaturationHigh",
  "ProbeFailing",
  "LeaderChanges",
  "GcPauseLong",
  "ThroughputDrop",
  "ConfigReloadFailed",
];
// Warning reasons the kubelet, scheduler and controllers emit. Enough of them that a warm-up
// sending every pool member once stays under the storm threshold per (reason, namespace).
const EVENT_REASONS: Record<string, string> = {
  BackOff: "Back-off restarting failed container",
  OOMKilled: "Container was OOM killed",
  FailedScheduling: "0/6 nodes are available: insufficient memory",
  Unhealthy: "Readiness probe failed: HTTP probe failed with statuscode: 503",
  FailedMount: "MountVolume.SetUp failed for volume: secret not found",
  Evicted: "The node was low on resource: memory",
  FailedCreatePodSandBox: "Failed to create pod sandbox: context deadline exceeded",
  ErrImagePull: "Failed to pull image: manifest unknown",
  ImagePullBackOff: "Back-off pulling image",
  FailedAttachVolume: "AttachVolume.Attach failed for volume: timed out waiting for external-attacher",
  FailedKillPod: "error killing pod: failed to KillPodSandbox",
  FailedCreate: "Error creating: pods is forbidden: exceeded quota",
  FailedSync: "error determining status: rpc error: code = Unknown",
  ProbeWarning: "Readiness probe warning: redirect to a different host",
  FailedPreStopHook: "PreStopHook failed",
  FailedPostStartHook: "PostStartHook failed",
  ExceededGracePeriod: "Container runtime did not kill the pod within specified grace period",
  NetworkNotReady: "network is not ready: container runtime network not ready",
  FailedToUpdateEndpoint: "Failed to update endpoint: the object has been modified",
  FailedGetResourceMetric: "failed to get cpu utilization: unable to get metrics for resource cpu",
  BackoffLimitExceeded: "Job has reached the specified backoff limit",
  DeadlineExceeded: "Job was active longer than specified deadline",
  FailedComputeMetricsReplicas: "invalid metrics (1 invalid out of 1)",
  NodeNotReady: "Node is not ready",
};
const APPS = ["api", "checkout", "payments", "search", "inventory", "auth", "billing", "catalog", "ingest", "worker"];
const SEVERITIES = ["critical", "warning", "warning", "warning", "info"];
const EXTRA_LABELS: [string, string[]][] = [
  ["team", ["sre", "payments", "search", "platform", "data"]],
  ["cluster", ["prod-eu-1", "prod-us-1", "staging-1"]],
  ["container", ["app", "sidecar", "proxy"]],
  ["job", ["kubernetes-pods", "kube-state-metrics", "node-exporter"]],
  ["prometheus", ["monitoring/k8s"]],
  ["endpoint", ["http-metrics", "web"]],
];
const WORDS =
  "the pod in namespace has exceeded its threshold for more than five minutes check recent deploys and resource limits error rate latency saturation replicas restart".split(
    " ",
  );

// Salts keep the independent streams (request, identity, storm...) apart.
const SALT = { request: 1, identity: 2, phase: 3, storm: 4, sibling: 5 } as const;

/** Reads the model's knobs from k6 `__ENV` (SEED, POOL_SIZE, NEW_SHARE, ...); a bad value is named. */
export function trafficConfigFromEnv(env: Record<string, string | undefined>, startTimeMs: number): TrafficConfig {
  const read = (name: string, fallback: number, valid: (n: number) => boolean, rule: string): number => {
    const raw = env[name];
    if (raw === undefined || raw === "") return fallback;
    const value = Number(raw);
    if (!Number.isFinite(value) || !valid(value)) {
      throw new Error(`traffic config: ${name} must be ${rule} (got: ${raw})`);
    }
    return value;
  };
  const share = (n: number) => n >= 0 && n <= 1;
  const count = (n: number) => Number.isInteger(n) && n >= 0;
  const d = DEFAULT_TRAFFIC;
  const config: TrafficConfig = {
    seed: read("SEED", d.seed, count, "a non-negative integer"),
    poolSize: read("POOL_SIZE", d.poolSize, (n) => count(n) && n > 0, "a positive integer"),
    newShare: read("NEW_SHARE", d.newShare, share, "a share between 0 and 1"),
    kubernetesEventShare: read("K8S_EVENT_SHARE", d.kubernetesEventShare, share, "a share between 0 and 1"),
    multiAlertShare: read("MULTI_ALERT_SHARE", d.multiAlertShare, share, "a share between 0 and 1"),
    stormEvery: read("STORM_EVERY", d.stormEvery, count, "a non-negative integer (iterations; 0 disables storms)"),
    stormLength: read("STORM_LENGTH", d.stormLength, (n) => count(n) && n > 0, "a positive integer (iterations)"),
    stormShare: read("STORM_SHARE", d.stormShare, share, "a share between 0 and 1"),
    startTimeMs,
  };
  if (config.stormEvery > 0 && config.stormLength > config.stormEvery) {
    throw new Error(
      `traffic config: STORM_LENGTH must not exceed STORM_EVERY (got: ${config.stormLength} > ${config.stormEvery})`,
    );
  }
  return config;
}

interface Identity {
  kind: SignalKind;
  signalName: string;
  namespace: string;
  resourceKind: "Pod" | "Deployment";
  resourceName: string;
  severity: string;
  extraLabels: Record<string, string>;
  descriptionLength: number;
  firingTimeMs: number;
  /** Alerts Alertmanager sends together for this member (the same group every time it repeats). */
  groupSize: number;
  stream: Stream;
}

interface Storm {
  index: number;
  start: number;
  alertname: string;
  namespace: string;
}

/** The request of iteration `iteration` (0-based, e.g. k6's exec.scenario.iterationInTest). */
export function signalRequest(config: TrafficConfig, iteration: number): SignalRequest {
  const stream = new Stream(mixSeed(config.seed, SALT.request, iteration));
  const storm = activeStorm(config, iteration);
  if (storm && stream.chance(config.stormShare)) return stormRequest(config, storm, iteration, stream);
  return poolRequest(config, stream.int(config.poolSize), iteration);
}

/**
 * The first sighting of pool member `slot` as it is active at iteration 0: sending
 * every slot once before a measured run gives the steady state the model
 * describes (mostly duplicates) instead of a cold start where everything is new.
 */
export function warmupRequest(config: TrafficConfig, slot: number): SignalRequest {
  return poolRequest(config, slot % config.poolSize, 0);
}

function poolRequest(config: TrafficConfig, slot: number, iteration: number): SignalRequest {
  const id = identity(config, slot, generation(config, slot, iteration));
  if (id.kind === "kubernetes-event") return eventRequest(config, id, iteration);
  const alerts = [id];
  for (let k = 1; k < id.groupSize; k++) alerts.push(sibling(config, id, slot, iteration, k));
  return webhookRequest(alerts, iteration, "pool");
}

/** Pool slots rotate to a new fingerprint every `poolSize / newShare` iterations, staggered per slot. */
function generation(config: TrafficConfig, slot: number, iteration: number): number {
  if (config.newShare <= 0) return 0;
  const lifetime = Math.max(1, Math.round(config.poolSize / config.newShare));
  const phase = mixSeed(config.seed, SALT.phase, slot) % lifetime;
  return Math.floor((iteration + phase) / lifetime);
}

function identity(config: TrafficConfig, slot: number, gen: number): Identity {
  const s = new Stream(mixSeed(config.seed, SALT.identity, slot, gen));
  const kind: SignalKind = s.chance(config.kubernetesEventShare) ? "kubernetes-event" : "prometheus";
  const app = s.pick(APPS);
  const isPod = kind === "kubernetes-event" || s.chance(0.8);
  const extraLabels: Record<string, string> = {};
  for (const [name, values] of EXTRA_LABELS) if (s.chance(0.5)) extraLabels[name] = s.pick(values);
  return {
    kind,
    signalName: kind === "prometheus" ? `${s.pick(AREAS)}${s.pick(SYMPTOMS)}` : s.pick(Object.keys(EVENT_REASONS)),
    namespace: s.pick(NAMESPACES),
    resourceKind: isPod ? "Pod" : "Deployment",
    resourceName: isPod ? podName(app, s) : `${app}-${s.hex(4)}`,
    severity: s.pick(SEVERITIES),
    extraLabels,
    descriptionLength: descriptionLength(s),
    firingTimeMs: config.startTimeMs - s.int(3_600_000),
    groupSize: kind === "prometheus" && s.chance(config.multiAlertShare) ? s.between(2, 4) : 1,
    stream: s,
  };
}

/** Another pod of the same alert group: same alertname and namespace, so Alertmanager would batch them. */
function sibling(config: TrafficConfig, of: Identity, slot: number, iteration: number, k: number): Identity {
  const s = new Stream(mixSeed(config.seed, SALT.sibling, slot, generation(config, slot, iteration), k));
  return { ...of, resourceKind: "Pod", resourceName: podName(s.pick(APPS), s), stream: s };
}

function activeStorm(config: TrafficConfig, iteration: number): Storm | undefined {
  if (config.stormEvery <= 0) return undefined;
  const index = Math.floor(iteration / config.stormEvery);
  const s = new Stream(mixSeed(config.seed, SALT.storm, index));
  const start = index * config.stormEvery + s.int(Math.max(1, config.stormEvery - config.stormLength + 1));
  if (iteration < start || iteration >= start + config.stormLength) return undefined;
  return { index, start, alertname: `${s.pick(AREAS)}${s.pick(SYMPTOMS)}`, namespace: s.pick(NAMESPACES) };
}

/** Every storm member is a different pod: many new signals of one alertname in one namespace. */
function stormRequest(config: TrafficConfig, storm: Storm, iteration: number, s: Stream): SignalRequest {
  const member: Identity = {
    kind: "prometheus",
    signalName: storm.alertname,
    namespace: storm.namespace,
    resourceKind: "Pod",
    resourceName: podName(s.pick(APPS), s),
    severity: "critical",
    extraLabels: { storm: `storm-${storm.index}` },
    descriptionLength: descriptionLength(s),
    firingTimeMs: config.startTimeMs,
    groupSize: 1,
    stream: s,
  };
  return webhookRequest([member], iteration, "storm");
}

function podName(app: string, s: Stream): string {
  return `${app}-${s.hex(9)}-${s.hex(5)}`;
}

/** Mostly short annotations, some long ones, a few large ones (payload sizes vary as in real alerting). */
function descriptionLength(s: Stream): number {
  const roll = s.float();
  if (roll < 0.7) return s.between(40, 200);
  if (roll < 0.95) return s.between(200, 2000);
  return s.between(2000, 8000);
}

function text(s: Stream, length: number): string {
  let out = "";
  while (out.length < length) out += `${s.pick(WORDS)} `;
  return out.slice(0, length).trim();
}

function fingerprintOf(id: Identity): FingerprintInput {
  const { signalName, namespace, resourceKind: kind, resourceName: name } = id;
  return { signalName, namespace, kind, name, input: `${signalName}:${namespace}:${kind}:${name}` };
}

function alertLabels(id: Identity): Record<string, string> {
  const resourceLabel = id.resourceKind === "Pod" ? "pod" : "deployment";
  return {
    alertname: id.signalName,
    namespace: id.namespace,
    [resourceLabel]: id.resourceName,
    severity: id.severity,
    ...id.extraLabels,
  };
}

/** Labels (or annotations) shared by every alert with the same value, as Alertmanager computes them. */
function common(sets: Record<string, string>[]): Record<string, string> {
  const [first, ...rest] = sets;
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(first ?? {})) {
    if (rest.every((set) => set[key] === value)) out[key] = value;
  }
  return out;
}

function webhookRequest(ids: Identity[], iteration: number, source: "pool" | "storm"): SignalRequest {
  const alerts = ids.map((id) => ({
    status: "firing",
    labels: alertLabels(id),
    annotations: {
      summary: `${id.signalName} on ${id.resourceName}`,
      description: text(id.stream, id.descriptionLength),
    },
    startsAt: new Date(id.firingTimeMs).toISOString(),
    endsAt: "0001-01-01T00:00:00Z",
    generatorURL: `http://prometheus.load:9090/graph?g0.expr=${encodeURIComponent(id.signalName)}`,
    fingerprint: id.stream.hex(16),
  }));
  const alertname = ids[0]?.signalName ?? "";
  const payload = {
    receiver: "gateway",
    status: "firing",
    alerts,
    groupLabels: { alertname },
    commonLabels: common(alerts.map((a) => a.labels)),
    commonAnnotations: common(alerts.map((a) => a.annotations)),
    externalURL: "http://alertmanager.load:9093",
    version: "4",
    groupKey: `{}:{alertname="${alertname}"}`,
    truncatedAlerts: 0,
  };
  return {
    kind: "prometheus",
    path: PROMETHEUS_PATH,
    body: JSON.stringify(payload),
    meta: { iteration, source, fingerprints: ids.map(fingerprintOf) },
  };
}

function eventRequest(config: TrafficConfig, id: Identity, iteration: number): SignalRequest {
  const s = id.stream;
  const event = {
    apiVersion: "v1",
    kind: "Event",
    metadata: { name: `${id.resourceName}.${s.hex(16)}`, namespace: id.namespace },
    type: "Warning",
    reason: id.signalName,
    message: `${EVENT_REASONS[id.signalName]} (${id.resourceName})`,
    involvedObject: {
      apiVersion: "v1",
      kind: id.resourceKind,
      namespace: id.namespace,
      name: id.resourceName,
      uid: `${s.hex(8)}-${s.hex(4)}-${s.hex(4)}-${s.hex(4)}-${s.hex(12)}`,
    },
    firstTimestamp: new Date(id.firingTimeMs).toISOString(),
    lastTimestamp: new Date(config.startTimeMs).toISOString(),
    count: s.between(1, 50),
    source: { component: "kubelet", host: `node-${s.between(1, 6)}` },
  };
  return {
    kind: "kubernetes-event",
    path: KUBERNETES_EVENT_PATH,
    body: JSON.stringify(event),
    meta: { iteration, source: "pool", fingerprints: [fingerprintOf(id)] },
  };
}
