import { describe } from "vitest";
import { test as base, expect } from "../../../harness/src/fixtures.js";
import { remediationRequests } from "../../../harness/src/invariants.js";
import { eventually } from "../../../harness/src/poll.js";
import { LocalStack, type StartedLocalStack } from "../../../harness/src/stack.js";

// The gateway as its own process on the real stack, driven over HTTP like Alertmanager would.
const test = base.extend<{ local: StartedLocalStack }>({
  local: [
    // biome-ignore lint/correctness/noEmptyPattern: vitest fixtures destructure their dependencies
    async ({}, use) => {
      const stack = await new LocalStack()
        .withNamespaces({ payments: { environment: "staging" } })
        .withGatewayConfig({ processing: { storm: { enabled: false } } })
        .start();
      try {
        await use(stack);
      } finally {
        await stack.stop();
      }
    },
    { scope: "file" },
  ],
});

function alert(pod: string, status = "firing") {
  return {
    status,
    labels: { alertname: "PaymentsLatencyHigh", severity: "warning", namespace: "payments", pod },
    annotations: { summary: `latency high on ${pod}` },
    startsAt: "2026-11-26T10:00:00Z",
    endsAt: status === "resolved" ? "2026-11-26T10:05:00Z" : "0001-01-01T00:00:00Z",
    generatorURL: "http://prometheus/graph",
    fingerprint: pod,
  };
}

function webhook(alerts: unknown[]) {
  return {
    version: "4",
    groupKey: '{}:{alertname="PaymentsLatencyHigh"}',
    truncatedAlerts: 0,
    status: "firing",
    receiver: "gateway",
    groupLabels: { alertname: "PaymentsLatencyHigh" },
    commonLabels: {},
    commonAnnotations: {},
    externalURL: "http://alertmanager",
    alerts,
  };
}

async function post(
  stack: StartedLocalStack,
  body: unknown,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${stack.gateway?.getUrl()}/api/v1/signals/prometheus`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

describe("signals over HTTP on the real stack", () => {
  test("201 then 202 for the same alert; status.deduplication catches up in the API server", async ({ local }) => {
    const first = await post(local, webhook([alert("api-0")]));
    expect(first.status).toBe(201);
    expect(first.body).toMatchObject({ status: "created", environment: "staging", priority: "P2" });
    for (let i = 0; i < 3; i++) expect((await post(local, webhook([alert("api-0")]))).status).toBe(202);
    const name = first.body.remediationRequestName;
    await eventually(
      async () => {
        const rr = (await remediationRequests(local.kube)).find((r) => r.metadata.name === name);
        return rr?.status?.deduplication?.occurrenceCount === 4 ? rr : false;
      },
      { what: `${name} with status.deduplication.occurrenceCount 4`, timeoutMs: 15_000 },
    );
  });

  test("several alerts give 207 with a result per alert and a summary; each new one is one request", async ({
    local,
  }) => {
    const res = await post(
      local,
      webhook([alert("api-1"), alert("api-2"), alert("api-1"), alert("api-3", "resolved")]),
    );
    expect(res.status).toBe(207);
    const results = res.body.results as Array<{ status: string; fingerprint: string }>;
    expect(results.map((r) => r.status)).toEqual(["created", "created", "duplicate", "resolved"]);
    expect(res.body.summary).toEqual({
      total: 4,
      created: 2,
      deduplicated: 1,
      stormAggregated: 0,
      resolved: 1,
      rejected: 0,
      failed: 0,
    });
    const inNamespace = (await remediationRequests(local.kube)).filter((r) => r.metadata.namespace === "payments");
    const byFingerprint = new Set(inNamespace.map((r) => r.spec.signalFingerprint));
    expect(byFingerprint).toContain(results[0]?.fingerprint);
    expect(byFingerprint).toContain(results[1]?.fingerprint);
    expect(byFingerprint).not.toContain(results[3]?.fingerprint);
  });
});
