import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { fingerprint } from "../../src/fingerprint.js";
import { normalizeAlertmanager, normalizeKubernetesEvent } from "../../src/normalize.js";
import type { AlertmanagerPayload, KubernetesEvent } from "../../src/payloads.js";
import { priorityFor } from "../../src/priority.js";
import { ProblemError } from "../../src/types.js";
import { warningEvent, webhook } from "./helpers.js";

const NOW = "2025-01-01T12:00:00.000Z";
const sha256 = (s: string) => createHash("sha256").update(s).digest("hex");

function alertSignal(labels: Record<string, string>, common: Record<string, string> = {}) {
  const payload = { ...webhook(labels), commonLabels: common } as AlertmanagerPayload;
  return normalizeAlertmanager(payload, NOW)[0]!.signal;
}

function problemOf(fn: () => unknown): ProblemError {
  try {
    fn();
  } catch (err) {
    if (err instanceof ProblemError) return err;
    throw err;
  }
  throw new Error("expected a ProblemError");
}

describe("fingerprint", () => {
  it.each([
    [
      "HighMemoryUsage",
      "payments",
      "Pod",
      "api-7d9f",
      "2b29dad632a3381461384d0880abec3772b93d468e19f2f1d897f43880a2d040",
    ],
    ["NodeDown", "", "Node", "worker-1", "ac3ac4ba86e8dce2e68e01aa71b8fc8b11c1d460ea49b9112b68c3246bf8ce98"],
    ["BackOff", "payments", "Pod", "api-7d9f", "91083291c71b93ad2c9c027384ee5d495964c9624b6e00edfd0695d504f807d0"],
    ["Custom", "default", "Unknown", "unknown", "cdd1ea6552e5c5cf09094460f952593a3e34cb4718ae5edf6fa18057efed3e8b"],
  ])("%s:%s:%s:%s matches the sha256sum vector", (name, ns, kind, res, expected) => {
    expect(fingerprint(name, ns, kind, res)).toBe(expected);
  });
});

describe("normalizeAlertmanager", () => {
  it("takes the resource from the first of pod, deployment, statefulset, daemonset, node, service", () => {
    const cases: [Record<string, string>, string, string][] = [
      [{ pod: "p", deployment: "d", service: "s" }, "Pod", "p"],
      [{ deployment: "d", statefulset: "st", node: "n" }, "Deployment", "d"],
      [{ statefulset: "st", daemonset: "ds" }, "StatefulSet", "st"],
      [{ daemonset: "ds", service: "s" }, "DaemonSet", "ds"],
      [{ service: "s", node: "n" }, "Node", "n"],
      [{ service: "s" }, "Service", "s"],
      [{ instance: "10.0.0.1:9100" }, "Unknown", "unknown"],
    ];
    for (const [labels, kind, name] of cases) {
      const s = alertSignal({ alertname: "A", namespace: "ns1", ...labels });
      expect(s.resource.kind, JSON.stringify(labels)).toBe(kind);
      expect(s.resource.name).toBe(name);
    }
  });

  it("takes the namespace from namespace, else exported_namespace, else default", () => {
    expect(alertSignal({ alertname: "A", pod: "p", namespace: "a", exported_namespace: "b" }).namespace).toBe("a");
    expect(alertSignal({ alertname: "A", pod: "p", exported_namespace: "b" }).namespace).toBe("b");
    expect(alertSignal({ alertname: "A", pod: "p" }).namespace).toBe("default");
  });

  it("gives node signals no namespace and fingerprints them with an empty namespace", () => {
    const s = alertSignal({ alertname: "NodeDown", node: "worker-1", namespace: "monitoring" });
    expect(s.namespace).toBe("");
    expect(s.resource).toEqual({ kind: "Node", name: "worker-1" });
    expect(s.fingerprint).toBe(sha256("NodeDown::Node:worker-1"));
  });

  it("fingerprints signalName:namespace:kind:name as 64 lowercase hex characters", () => {
    const s = alertSignal({ alertname: "HighMemoryUsage", namespace: "payments", pod: "api-7d9f" });
    expect(s.fingerprint).toBe(sha256("HighMemoryUsage:payments:Pod:api-7d9f"));
    expect(s.fingerprint).toMatch(/^[a-f0-9]{64}$/);
  });

  it("maps severity: critical/warning/info kept, anything else warning", () => {
    for (const [label, expected] of [
      ["critical", "critical"],
      ["warning", "warning"],
      ["info", "info"],
      ["CRITICAL", "critical"],
      ["page", "warning"],
      ["test", "warning"],
    ]) {
      expect(alertSignal({ alertname: "A", severity: label as string }).severity).toBe(expected);
    }
    expect(alertSignal({ alertname: "A" }).severity).toBe("warning");
  });

  it("overlays each alert's labels and annotations with the common ones", () => {
    const payload = {
      ...webhook({ alertname: "A", team: "alert-team", pod: "p1" }, { alertname: "A", pod: "p2" }),
      commonLabels: { team: "common-team", namespace: "shop" },
      commonAnnotations: { runbook: "http://runbook" },
    } as AlertmanagerPayload;
    const [first, second] = normalizeAlertmanager(payload, NOW).map((a) => a.signal);
    expect(first!.labels).toEqual({ alertname: "A", team: "common-team", pod: "p1", namespace: "shop" });
    expect(second!.labels.namespace).toBe("shop");
    expect(first!.annotations).toEqual({ summary: "something is wrong", runbook: "http://runbook" });
    expect(first!.fingerprint).not.toBe(second!.fingerprint);
  });

  it("fills the remaining signal fields", () => {
    const s = alertSignal({ alertname: "A", namespace: "ns", pod: "p" });
    expect(s).toMatchObject({
      signalName: "A",
      firingTime: "2025-01-01T10:00:00.000Z",
      receivedTime: NOW,
      sourceType: "prometheus-alert",
      source: "gateway",
      resource: { kind: "Pod", name: "p", namespace: "ns" },
    });
    expect(s.rawPayload).toMatchObject({ labels: { alertname: "A" } });
  });

  it("marks resolved alerts (per alert, else the payload status)", () => {
    const payload = webhook({ alertname: "A" }, { alertname: "B" }) as AlertmanagerPayload;
    payload.alerts[1]!.status = "resolved";
    expect(normalizeAlertmanager(payload, NOW).map((a) => a.resolved)).toEqual([false, true]);
    const allResolved = { ...webhook({ alertname: "A" }), status: "resolved" } as AlertmanagerPayload;
    delete allResolved.alerts[0]!.status;
    expect(normalizeAlertmanager(allResolved, NOW)[0]!.resolved).toBe(true);
  });

  it("normalizes the captured Alertmanager 0.25 payload", () => {
    const real = JSON.parse(readFileSync("/work/shared/fixtures/alertmanager-0.25-webhook.json", "utf8"));
    const [alert] = normalizeAlertmanager(real, NOW);
    expect(alert!.signal).toMatchObject({
      signalName: "AlwaysFiring",
      severity: "warning",
      namespace: "default",
      source: "hook",
    });
    expect(alert!.signal.fingerprint).toBe(sha256("AlwaysFiring:default:Unknown:unknown"));
  });

  it("rejects a missing or empty alertname naming the alert", () => {
    const payload = webhook({ alertname: "A" }, { alertname: "B" }, { severity: "critical" }) as AlertmanagerPayload;
    expect(problemOf(() => normalizeAlertmanager(payload, NOW)).detail).toBe("alerts[2].labels.alertname is required");
    const empty = webhook({ alertname: "" }) as AlertmanagerPayload;
    expect(problemOf(() => normalizeAlertmanager(empty, NOW)).detail).toBe(
      "alerts[0].labels.alertname must not be empty",
    );
  });

  it("accepts an alertname that only the common labels carry", () => {
    const payload = { ...webhook({ pod: "p" }), commonLabels: { alertname: "FromCommon" } } as AlertmanagerPayload;
    expect(normalizeAlertmanager(payload, NOW)[0]!.signal.signalName).toBe("FromCommon");
  });

  it.each([
    "yesterday",
    "2025-13-01T00:00:00Z",
    "2025-02-30T00:00:00Z",
    "2025-01-01 10:00:00",
    "2025-01-01T25:00:00Z",
    "",
  ])("rejects the unparseable timestamp %j naming the field", (bad) => {
    const payload = webhook({ alertname: "A" }) as AlertmanagerPayload;
    payload.alerts[0]!.startsAt = bad;
    const err = problemOf(() => normalizeAlertmanager(payload, NOW));
    expect(err.status).toBe(400);
    expect(err.detail).toMatch(/^alerts\[0\]\.startsAt is not a valid RFC 3339 timestamp/);
  });

  it("accepts Go's RFC 3339 forms (nanoseconds, offsets, the zero time)", () => {
    const payload = webhook({ alertname: "A" }) as AlertmanagerPayload;
    payload.alerts[0]!.startsAt = "2025-01-01T12:00:00.123456789+02:00";
    payload.alerts[0]!.endsAt = "0001-01-01T00:00:00Z";
    expect(normalizeAlertmanager(payload, NOW)[0]!.signal.firingTime).toBe("2025-01-01T10:00:00.123Z");
  });
});

describe("normalizeKubernetesEvent", () => {
  const event = (o: Record<string, unknown> = {}) => warningEvent(o) as unknown as KubernetesEvent;

  it("uses the reason as signal name and the involved object as resource", () => {
    const s = normalizeKubernetesEvent(event(), NOW);
    expect(s).toMatchObject({
      signalName: "BackOff",
      severity: "warning",
      namespace: "payments",
      resource: { kind: "Pod", name: "api-7d9f", namespace: "payments" },
      sourceType: "kubernetes-event",
      source: "kubelet",
      firingTime: "2025-01-01T10:00:00.000Z",
      annotations: { message: "Back-off restarting failed container" },
    });
    expect(s.fingerprint).toBe(sha256("BackOff:payments:Pod:api-7d9f"));
  });

  it.each(["OOMKilled", "NodeNotReady", "FailedScheduling", "Evicted", "FailedMount", "NetworkNotReady"])(
    "treats reason %s as critical",
    (reason) => {
      expect(normalizeKubernetesEvent(event({ reason }), NOW).severity).toBe("critical");
    },
  );

  it("treats type Error as critical", () => {
    expect(normalizeKubernetesEvent(event({ type: "Error", reason: "Whatever" }), NOW).severity).toBe("critical");
  });

  it.each(["Normal", "Info", ""])("refuses type %j", (type) => {
    const err = problemOf(() => normalizeKubernetesEvent(event({ type }), NOW));
    expect(err.status).toBe(400);
    expect(err.detail).toContain(`type '${type}' is not processed`);
  });

  it("gives node events no namespace", () => {
    const s = normalizeKubernetesEvent(
      event({ reason: "NodeNotReady", involvedObject: { kind: "Node", name: "worker-1", namespace: "" } }),
      NOW,
    );
    expect(s.namespace).toBe("");
    expect(s.fingerprint).toBe(sha256("NodeNotReady::Node:worker-1"));
  });

  it("falls back to metadata.namespace, then default", () => {
    const noNs = { kind: "Pod", name: "p" };
    expect(normalizeKubernetesEvent(event({ involvedObject: noNs, metadata: { namespace: "m" } }), NOW).namespace).toBe(
      "m",
    );
    expect(normalizeKubernetesEvent(event({ involvedObject: noNs }), NOW).namespace).toBe("default");
  });

  it("accepts null timestamps (events.k8s.io style) and rejects bad ones naming the field", () => {
    const s = normalizeKubernetesEvent(event({ firstTimestamp: null, eventTime: "2025-01-01T09:00:00.000000Z" }), NOW);
    expect(s.firingTime).toBe("2025-01-01T09:00:00.000Z");
    expect(problemOf(() => normalizeKubernetesEvent(event({ lastTimestamp: "soon" }), NOW)).detail).toMatch(
      /^lastTimestamp is not a valid RFC 3339 timestamp/,
    );
  });
});

describe("priorityFor", () => {
  it.each([
    ["critical", "production", "P0"],
    ["critical", "staging", "P1"],
    ["warning", "production", "P1"],
    ["critical", "development", "P2"],
    ["warning", "staging", "P2"],
    ["warning", "development", "P2"],
    ["info", "production", "P3"],
    ["info", "unknown", "P3"],
    ["critical", "unknown", "P2"],
    ["warning", "qa", "P2"],
  ] as const)("%s + %s → %s", (severity, env, expected) => {
    expect(priorityFor(severity, env)).toBe(expected);
  });
});
