import type { FastifyInstance } from "fastify";
import { stringify } from "yaml";
import { type AppOptions, buildApp } from "../../src/app.js";
import { parseConfig } from "../../src/config.js";
import { createMetrics, type Metrics } from "../../src/metrics.js";
import type { GatewayConfig, Pipeline, PipelineRuntime, ProcessResult, Signal } from "../../src/types.js";

/** A configuration built through the real loader from a partial YAML tree. */
export function testConfig(partial: Record<string, unknown> = {}): GatewayConfig {
  return parseConfig(stringify(partial), { source: "test.yaml", env: {} }).config;
}

/**
 * Stand-in pipeline for HTTP unit tests: records what it was given and
 * answers with `respond` (default: created).
 */
export class StubPipeline implements Pipeline, Partial<PipelineRuntime> {
  readonly seen: Signal[] = [];
  health?: () => { redis: boolean; kubernetes: boolean };
  respond: (signal: Signal) => Promise<ProcessResult> | ProcessResult = (signal) => ({
    status: "created",
    message: "RemediationRequest created",
    fingerprint: signal.fingerprint,
    duplicate: false,
    remediationRequestName: `rr-${signal.fingerprint.slice(0, 12)}-abcde`,
    remediationRequestNamespace: signal.namespace || "kubernaut-system",
    environment: "production",
    priority: "P0",
  });

  async process(signal: Signal): Promise<ProcessResult> {
    this.seen.push(signal);
    return this.respond(signal);
  }
}

export interface TestApp {
  app: FastifyInstance;
  pipeline: StubPipeline;
  metrics: Metrics;
}

export async function testApp(
  partialConfig: Record<string, unknown> = {},
  extra: Partial<AppOptions> = {},
): Promise<TestApp> {
  const config = testConfig(partialConfig);
  const pipeline = new StubPipeline();
  const metrics = createMetrics();
  const app = buildApp({ config: () => config, pipeline, metrics, ...extra });
  await app.ready();
  return { app, pipeline, metrics };
}

/** A minimal valid Alertmanager webhook with the given alerts' labels. */
export function webhook(...labelSets: Record<string, string>[]) {
  return {
    version: "4",
    status: "firing",
    receiver: "gateway",
    groupLabels: {},
    commonLabels: {},
    commonAnnotations: {},
    externalURL: "http://alertmanager:9093",
    alerts: labelSets.map((labels) => ({
      status: "firing",
      labels,
      annotations: { summary: "something is wrong" },
      startsAt: "2025-01-01T10:00:00Z",
      endsAt: "0001-01-01T00:00:00Z",
      generatorURL: "http://prometheus/graph",
      fingerprint: "abc",
    })),
  };
}

export function warningEvent(overrides: Record<string, unknown> = {}) {
  return {
    type: "Warning",
    reason: "BackOff",
    message: "Back-off restarting failed container",
    involvedObject: { kind: "Pod", namespace: "payments", name: "api-7d9f", uid: "u-1" },
    firstTimestamp: "2025-01-01T10:00:00Z",
    lastTimestamp: "2025-01-01T10:05:00Z",
    count: 3,
    source: { component: "kubelet", host: "node-1" },
    ...overrides,
  };
}

export async function metricValue(
  metrics: Metrics,
  name: string,
  labels: Record<string, string> = {},
): Promise<number> {
  type Value = { labels: Record<string, string | number>; value: number; metricName?: string };
  // Histogram series (name_count, name_sum, name_bucket) live under the histogram's name.
  const values = (await metrics.registry.getMetricsAsJSON())
    .filter((m) => name.startsWith(m.name))
    .flatMap((m) => (m.values as Value[]).map((v) => ({ ...v, metricName: v.metricName ?? m.name })));
  return values
    .filter((v) => v.metricName === name && Object.entries(labels).every(([k, want]) => String(v.labels[k]) === want))
    .reduce((sum, v) => sum + v.value, 0);
}
