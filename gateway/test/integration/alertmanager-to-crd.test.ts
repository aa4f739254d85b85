import { describe } from "vitest";
import { AlertmanagerServer } from "../../../harness/src/components/alertmanager.js";
import { PrometheusServer } from "../../../harness/src/components/prometheus.js";
import { test as base, expect } from "../../../harness/src/fixtures.js";
import { remediationRequests } from "../../../harness/src/invariants.js";
import { eventually } from "../../../harness/src/poll.js";
import { LocalStack, type StartedLocalStack } from "../../../harness/src/stack.js";

// A real Prometheus rule fires, a real Alertmanager sends its version 4 webhook
// to the gateway, and a RemediationRequest appears in the API server.
const RULES = `
groups:
  - name: gateway-e2e
    rules:
      - alert: CheckoutPodCrashLooping
        expr: vector(1)
        for: 0s
        labels:
          severity: critical
          namespace: shop
          pod: checkout-7d9f-x2k4p
        annotations:
          summary: checkout pod is crash looping
`;

const test = base.extend<{ shop: StartedLocalStack }>({
  shop: [
    // biome-ignore lint/correctness/noEmptyPattern: vitest fixtures destructure their dependencies
    async ({}, use) => {
      const stack = await new LocalStack().withNamespaces({ shop: { environment: "production" } }).start();
      try {
        await use(stack);
      } finally {
        await stack.stop();
      }
    },
    { scope: "file" },
  ],
});

describe("Alertmanager webhook from a real Prometheus rule", () => {
  test("creates one RemediationRequest with the alert's identity, priority from the namespace", async ({ shop }) => {
    const gateway = shop.gateway?.getUrl();
    const am = await new AlertmanagerServer().withWebhookReceiver(`${gateway}/api/v1/signals/prometheus`).start();
    const prom = await new PrometheusServer().withRuleFile(RULES).withAlertmanager(am.getUrl()).start();
    try {
      const [rr] = await eventually(
        async () => {
          const rrs = (await remediationRequests(shop.kube)).filter((r) => r.metadata.namespace === "shop");
          return rrs.length > 0 ? rrs : false;
        },
        { what: "a RemediationRequest in namespace shop", timeoutMs: 60_000, intervalMs: 500 },
      );
      const spec = rr?.spec as unknown as Record<string, unknown>;
      expect(spec).toMatchObject({
        signalName: "CheckoutPodCrashLooping",
        severity: "critical",
        environment: "production",
        priority: "P0",
        signalType: "prometheus-alert",
        targetResource: { kind: "Pod", name: "checkout-7d9f-x2k4p", namespace: "shop" },
      });
      // Alertmanager repeats the group (resend every second): still one request, counted.
      await eventually(
        async () => {
          const rrs = (await remediationRequests(shop.kube)).filter((r) => r.metadata.namespace === "shop");
          return rrs.length === 1 && (rrs[0]?.status?.deduplication?.occurrenceCount ?? 0) >= 1;
        },
        { what: "exactly one RemediationRequest with an occurrence count", timeoutMs: 20_000 },
      );
    } finally {
      await prom.stop();
      await am.stop();
    }
  });
});
