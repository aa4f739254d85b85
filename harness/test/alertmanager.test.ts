import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AlertmanagerServer, type StartedAlertmanagerServer } from "../src/components/alertmanager.js";
import { PrometheusServer, type StartedPrometheusServer } from "../src/components/prometheus.js";
import { eventually } from "../src/poll.js";

interface Webhook {
  version: string;
  status: string;
  receiver: string;
  alerts: Array<{ status: string; labels: Record<string, string>; fingerprint: string }>;
}

const RULES = `
groups:
  - name: harness
    rules:
      - alert: HarnessAlwaysFiring
        expr: vector(1)
        for: 0s
        labels:
          severity: critical
          namespace: harness-test
        annotations:
          summary: fires as soon as the rule is evaluated
`;

describe("AlertmanagerServer (real alertmanager fed by a real Prometheus rule)", () => {
  const received: Webhook[] = [];
  let receiver: Server;
  let am: StartedAlertmanagerServer;
  let prom: StartedPrometheusServer;

  beforeAll(async () => {
    receiver = createServer((req, res) => {
      let body = "";
      req.on("data", (chunk) => {
        body += chunk;
      });
      req.on("end", () => {
        received.push(JSON.parse(body) as Webhook);
        res.writeHead(200).end();
      });
    });
    await new Promise<void>((resolve) => receiver.listen(0, "127.0.0.1", resolve));
    const hookUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;
    am = await new AlertmanagerServer().withWebhookReceiver(hookUrl, { groupWait: "1s" }).start();
    prom = await new PrometheusServer().withRuleFile(RULES).withAlertmanager(am.getUrl()).start();
  });
  afterAll(async () => {
    await prom?.stop();
    await am?.stop();
    receiver?.close();
  });

  it("delivers a version 4 webhook for an alert produced by a Prometheus rule", async () => {
    const hook = await eventually(
      () => received.find((w) => w.alerts.some((a) => a.labels.alertname === "HarnessAlwaysFiring")) ?? false,
      { what: "a webhook carrying HarnessAlwaysFiring", timeoutMs: 45_000, intervalMs: 200 },
    );
    expect(hook.version).toBe("4");
    expect(hook.status).toBe("firing");
    expect(hook.receiver).toBe("webhook-0");
    const alert = hook.alerts.find((a) => a.labels.alertname === "HarnessAlwaysFiring");
    expect(alert?.status).toBe("firing");
    expect(alert?.labels).toMatchObject({ severity: "critical", namespace: "harness-test" });
    expect(alert?.fingerprint).toMatch(/^[0-9a-f]{16}$/);
  });
});
