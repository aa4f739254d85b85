// The one alert of the duplicate-path benchmark, as an Alertmanager webhook body. Pure data:
// the k6 script sends it, duplicate-path.ts primes the servers with it.

/** Namespace of the alert; the benchmark's stack creates it. */
export const BENCH_NAMESPACE = "bench";

export const BENCH_ALERT_BODY = JSON.stringify({
  receiver: "gateway",
  status: "firing",
  alerts: [
    {
      status: "firing",
      labels: {
        alertname: "BenchDuplicate",
        namespace: BENCH_NAMESPACE,
        pod: "bench-7d9f8c6b5-x2x9k",
        severity: "warning",
      },
      annotations: { summary: "the same alert, over and over", description: "duplicate-path benchmark" },
      startsAt: "2026-01-01T00:00:00.000Z",
      endsAt: "0001-01-01T00:00:00Z",
      generatorURL: "http://prometheus.bench:9090/graph?g0.expr=up",
      fingerprint: "b3c1d2e4f5a6b7c8",
    },
  ],
  groupLabels: { alertname: "BenchDuplicate" },
  commonLabels: { alertname: "BenchDuplicate", namespace: BENCH_NAMESPACE, severity: "warning" },
  commonAnnotations: { summary: "the same alert, over and over" },
  externalURL: "http://alertmanager.bench:9093",
  version: "4",
  groupKey: '{}:{alertname="BenchDuplicate"}',
  truncatedAlerts: 0,
});
