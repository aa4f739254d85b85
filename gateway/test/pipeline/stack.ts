import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Redis } from "ioredis";
import { afterAll, beforeAll } from "vitest";
import { stringify } from "yaml";
import {
  KubeApiServer,
  REMEDIATION_REQUEST_CRD,
  type StartedKubeApiServer,
} from "../../../harness/src/components/kube-api.js";
import { RedisServer, type StartedRedisServer } from "../../../harness/src/components/redis.js";
import { freePort } from "../../../harness/src/ports.js";
import { parseConfig } from "../../src/config.js";
import { fingerprint } from "../../src/fingerprint.js";
import type { Log } from "../../src/log.js";
import { createMetrics, type Metrics } from "../../src/metrics.js";
import { createPipeline } from "../../src/pipeline.js";
import { LABEL_FINGERPRINT, labelValue, RR_API } from "../../src/remediation-request.js";
import type { GatewayConfig, PipelineRuntime, Severity, Signal } from "../../src/types.js";

/** Logs only when PIPELINE_TEST_LOG is set: the tests check state, not log lines. */
export const testLog: Log = Object.fromEntries(
  (["debug", "info", "warn", "error"] as const).map((level) => [
    level,
    (obj: object, msg?: string) => {
      if (process.env.PIPELINE_TEST_LOG) console.log(new Date().toISOString(), level, msg ?? "", JSON.stringify(obj));
    },
  ]),
) as unknown as Log;

export const FALLBACK_NAMESPACE = "kubernaut-system";

/** A validated configuration (the gateway's own parser) for the components of a test. */
export function testConfig(settings: Record<string, unknown>): GatewayConfig {
  const defaults = {
    kubernetes: { mode: "kubeconfig", requestTimeout: "5s" },
    processing: { deduplication: { ttl: "5m", statusFlushInterval: "200ms" } },
    namespaces: { fallbackNamespace: FALLBACK_NAMESPACE },
    dataStorage: { journalDir: mkdtempSync(join(tmpdir(), "gw-journal-")), flushInterval: "100ms" },
  };
  return parseConfig(stringify(merge(defaults, settings)), { source: "test", env: {} }).config;
}

function merge(a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> {
  const out = { ...a };
  for (const [k, v] of Object.entries(b)) {
    const base = out[k];
    out[k] =
      v && typeof v === "object" && !Array.isArray(v) && base && typeof base === "object"
        ? merge(base as Record<string, unknown>, v as Record<string, unknown>)
        : v;
  }
  return out;
}

/** A Kubernetes control plane with the CRD and the namespaces the tests place requests in. */
export async function startKube(
  namespaces: Record<string, Record<string, string>> = {},
): Promise<StartedKubeApiServer> {
  const kube = await new KubeApiServer().withCrds([REMEDIATION_REQUEST_CRD]).start();
  await kube.createNamespace(FALLBACK_NAMESPACE);
  for (const [name, labels] of Object.entries(namespaces)) await kube.createNamespace(name, labels);
  return kube;
}

export interface RunningPipeline {
  pipeline: PipelineRuntime;
  metrics: Metrics;
  /** Replace the configuration (as a reload would). */
  setConfig(cfg: GatewayConfig): void;
  config(): GatewayConfig;
}

export async function startPipeline(cfg: GatewayConfig): Promise<RunningPipeline> {
  let current = cfg;
  const metrics = createMetrics();
  const pipeline = await createPipeline({ config: () => current, metrics, log: testLog });
  return { pipeline, metrics, setConfig: (next) => (current = next), config: () => current };
}

/** What {@link pipelineOnRealStack} starts; filled in before the file's first test. */
export interface PipelineStack {
  redis: StartedRedisServer;
  kube: StartedKubeApiServer;
  run: RunningPipeline;
  /** A client of the same Redis, to read or change its state behind the pipeline's back. */
  client: Redis;
  config: GatewayConfig;
}

/**
 * A pipeline on a real Redis and API server (with the CRD and `namespaces`),
 * started before the file's tests and stopped after them. Data Storage is a
 * closed port unless `settings` names one: audit events then wait in the
 * buffer and journal, which these tests do not read.
 */
export function pipelineOnRealStack(
  namespaces: Record<string, Record<string, string>>,
  settings: Record<string, unknown> = {},
): PipelineStack {
  const stack = {} as PipelineStack;
  beforeAll(async () => {
    [stack.redis, stack.kube] = await Promise.all([new RedisServer().start(), startKube(namespaces)]);
    stack.config = testConfig(
      merge(
        {
          redis: { url: stack.redis.getConnectionUrl() },
          kubernetes: { kubeconfigPath: stack.kube.getKubeconfigPath() },
          dataStorage: { url: `http://127.0.0.1:${await freePort()}` },
        },
        settings,
      ),
    );
    stack.run = await startPipeline(stack.config);
    stack.client = stack.redis.client();
  });
  afterAll(async () => {
    stack.client?.disconnect();
    await stack.run?.pipeline.close();
    await Promise.all([stack.redis?.stop(), stack.kube?.stop()]);
  });
  return stack;
}

let sequence = 0;

/** A firing Prometheus alert about a pod, normalized as the HTTP layer would. */
export function podAlert(opts: { name?: string; namespace?: string; pod?: string; severity?: Severity } = {}): Signal {
  const name = opts.name ?? "KubePodCrashLooping";
  const namespace = opts.namespace ?? "default";
  const pod = opts.pod ?? `pod-${++sequence}`;
  const now = new Date().toISOString();
  const labels = { alertname: name, namespace, pod, severity: opts.severity ?? "warning" };
  return {
    fingerprint: fingerprint(name, namespace, "Pod", pod),
    signalName: name,
    severity: opts.severity ?? "warning",
    namespace,
    resource: { kind: "Pod", name: pod, namespace },
    labels,
    annotations: { summary: `${pod} is crash looping` },
    firingTime: now,
    receivedTime: now,
    sourceType: "prometheus-alert",
    source: "alertmanager",
    rawPayload: { status: "firing", labels },
  };
}

/** A node-scoped alert: no namespace. */
export function nodeAlert(node: string): Signal {
  const now = new Date().toISOString();
  return {
    ...podAlert(),
    fingerprint: fingerprint("NodeNotReady", "", "Node", node),
    signalName: "NodeNotReady",
    severity: "critical",
    namespace: "",
    resource: { kind: "Node", name: node },
    labels: { alertname: "NodeNotReady", node, severity: "critical" },
    firingTime: now,
    receivedTime: now,
  };
}

export interface StoredRR {
  metadata: { name: string; namespace: string; labels: Record<string, string> };
  spec: Record<string, unknown> & { signalFingerprint: string };
  status?: {
    overallPhase?: string;
    deduplication?: { occurrenceCount: number; firstSeenAt: string; lastSeenAt: string };
  };
}

/** RemediationRequests as the API server has them (namespace "" = all namespaces). */
export async function listRRs(kube: StartedKubeApiServer, namespace: string, fp?: string): Promise<StoredRR[]> {
  const selector = fp ? `?labelSelector=${encodeURIComponent(`${LABEL_FINGERPRINT}=${labelValue(fp)}`)}` : "";
  const scope = namespace ? `/namespaces/${namespace}` : "";
  const res = await kube.request("GET", `/apis/${RR_API.group}/${RR_API.version}${scope}/${RR_API.plural}${selector}`);
  if (res.status !== 200) throw new Error(`list RemediationRequests: HTTP ${res.status} ${res.body}`);
  return (JSON.parse(res.body) as { items: StoredRR[] }).items;
}

/** Current value of a metric series (0 when absent). */
export async function metricValue(
  metrics: Metrics,
  name: string,
  labels: Record<string, string> = {},
): Promise<number> {
  const metric = metrics.registry.getSingleMetric(name);
  if (!metric) throw new Error(`no metric ${name}`);
  const { values } = await metric.get();
  return values
    .filter((v) =>
      Object.entries(labels).every(([k, want]) => String((v.labels as Record<string, unknown>)[k]) === want),
    )
    .reduce((sum, v) => sum + v.value, 0);
}

/** Sum of the API server's own apiserver_request_total for RemediationRequests whose labels include all of `labels`. */
export async function apiServerRequests(kube: StartedKubeApiServer, labels: Record<string, string>): Promise<number> {
  const res = await kube.request("GET", "/metrics");
  const wanted = Object.entries({ resource: "remediationrequests", ...labels }).map(([k, v]) => `${k}="${v}"`);
  return res.body
    .split("\n")
    .filter((line) => line.startsWith("apiserver_request_total{") && wanted.every((w) => line.includes(w)))
    .reduce((sum, line) => sum + Number(line.slice(line.lastIndexOf(" ") + 1)), 0);
}
