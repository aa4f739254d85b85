// Probes most experiments share: the gateway alive and ready, Redis available as the gateway
// sees it (scraped by the run's Prometheus), RemediationRequests in the API server.
import type { Probe, RunProperties } from "../src/experiment.js";

const quick: RunProperties = { timeoutMs: 2_000, intervalMs: 500, retries: 10 };

export const gatewayReady: Probe = {
  name: "gateway ready",
  type: "http",
  mode: "Edge",
  url: "{gateway}/readyz",
  criteria: { op: "==", code: 200 },
  runProperties: quick,
};

/** Alive throughout: the process answers its liveness probe while the faults come and go. */
export const gatewayAlive: Probe = {
  name: "gateway alive",
  type: "http",
  mode: "Continuous",
  url: "{gateway}/healthz",
  criteria: { op: "==", code: 200 },
  runProperties: { timeoutMs: 3_000, intervalMs: 500, retries: 2, pollingIntervalMs: 1_000 },
};

export const redisAvailable: Probe = {
  name: "gateway sees Redis available",
  type: "prom",
  mode: "Edge",
  query: "min(gateway_redis_available)",
  comparator: { op: "==", value: 1 },
  // Scraped once a second: a few retries cover the scrape after a recovery.
  runProperties: { timeoutMs: 3_000, intervalMs: 1_000, retries: 15 },
};

export const requestsExist: Probe = {
  name: "RemediationRequests in the API server",
  type: "k8s",
  mode: "EOT",
  group: "kubernaut.ai",
  version: "v1alpha1",
  plural: "remediationrequests",
  operation: "present",
  runProperties: quick,
};
