// Alertmanager webhooks a scenario posts with its own client: to any replica, with any
// headers, and with the labels exactly as given (a node-scoped alert has no namespace
// or pod label at all, as Prometheus would send it).
import { createHash } from "node:crypto";
import type { WebhookAnswer } from "./dsl.js";

export const bearer = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` });

/** One firing alert (version 4 webhook, one alert) posted to `gatewayUrl`; its answer. */
export async function postAlert(
  gatewayUrl: string,
  labels: Record<string, string> & { alertname: string },
  headers: Record<string, string> = {},
): Promise<WebhookAnswer> {
  const res = await sendAlert(gatewayUrl, labels, headers);
  return { status: res.status, body: (await res.json().catch(() => ({}))) as WebhookAnswer["body"] };
}

/** The same, the response as it came (its body unread). */
export function sendAlert(
  gatewayUrl: string,
  labels: Record<string, string> & { alertname: string },
  headers: Record<string, string> = {},
): Promise<Response> {
  const body = {
    version: "4",
    groupKey: `{}:{alertname="${labels.alertname}"}`,
    truncatedAlerts: 0,
    status: "firing",
    receiver: "gateway",
    groupLabels: { alertname: labels.alertname },
    commonLabels: labels,
    commonAnnotations: {},
    externalURL: "http://alertmanager.e2e:9093",
    alerts: [
      {
        status: "firing",
        labels,
        annotations: {},
        startsAt: new Date().toISOString(),
        endsAt: "0001-01-01T00:00:00Z",
        generatorURL: "http://prometheus.e2e/graph",
        // Alertmanager's own: 16 hex digits of a hash of the label set.
        fingerprint: createHash("sha256").update(JSON.stringify(labels)).digest("hex").slice(0, 16),
      },
    ],
  };
  return fetch(`${gatewayUrl}/api/v1/signals/prometheus`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(15_000),
  });
}

/** "201 created", "403 forbidden" (a problem's slug): what an answer said, for messages. */
export function said(a: WebhookAnswer): string {
  const word = typeof a.body.type === "string" ? a.body.type.replace(/^.*\/problems\//, "") : a.body.status;
  return `${a.status} ${word ?? ""}`.trim();
}
