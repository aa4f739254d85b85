// The shared traffic model: reproducible per seed, and the mix it promises (mostly duplicates of
// a few thousand fingerprints, a steady share of new ones, storms, both endpoints).
import { describe, expect, it } from "vitest";
import {
  DEFAULT_TRAFFIC,
  KUBERNETES_EVENT_PATH,
  NAMESPACES,
  PROMETHEUS_PATH,
  type SignalRequest,
  signalRequest,
  type TrafficConfig,
  trafficConfigFromEnv,
  warmupRequest,
} from "../lib/traffic.js";

/** The gateway's default processing.storm.rateThreshold: new fingerprints per (name, namespace) in a window. */
const STORM_THRESHOLD = 10;

const requests = (config: TrafficConfig, from: number, to: number): SignalRequest[] =>
  Array.from({ length: to - from }, (_, k) => signalRequest(config, from + k));

describe("traffic model", () => {
  it("is reproducible per seed and differs across seeds", () => {
    const a = requests(DEFAULT_TRAFFIC, 0, 300);
    expect(requests(DEFAULT_TRAFFIC, 0, 300)).toEqual(a);
    // Request i does not depend on the requests before it: any VU can compute any iteration.
    expect(signalRequest(DEFAULT_TRAFFIC, 250)).toEqual(a[250]);
    const b = requests({ ...DEFAULT_TRAFFIC, seed: 2 }, 0, 300);
    expect(b.filter((r, i) => r.body === a[i]?.body).length).toBeLessThan(5);
  });

  it("sends mostly duplicates, a steady share of new fingerprints, and both endpoints", () => {
    const config = { ...DEFAULT_TRAFFIC, stormEvery: 0 };
    const seen = new Set<string>();
    let fresh = 0;
    let events = 0;
    const window = requests(config, 0, 120_000);
    window.forEach((r, i) => {
      const isNew = r.meta.fingerprints.some((f) => !seen.has(f.input));
      for (const f of r.meta.fingerprints) seen.add(f.input);
      // Past the warm-up (the pool's first sightings), new fingerprints come at NEW_SHARE.
      if (i >= 60_000) {
        if (isNew) fresh++;
        if (r.kind === "kubernetes-event") events++;
      }
    });
    expect(fresh / 60_000).toBeGreaterThan(config.newShare * 0.8);
    expect(fresh / 60_000).toBeLessThan(config.newShare * 1.2);
    expect(events / 60_000).toBeGreaterThan(config.kubernetesEventShare - 0.02);
    expect(events / 60_000).toBeLessThan(config.kubernetesEventShare + 0.02);
    // Fingerprints active in a short window: about the pool size.
    const active = new Set(requests(config, 200_000, 230_000).flatMap((r) => r.meta.fingerprints.map((f) => f.input)));
    expect(active.size).toBeGreaterThan(config.poolSize * 0.9);
    expect(active.size).toBeLessThan(config.poolSize * 1.3);
  });

  it("warms up without tripping a storm: every pool member once stays under the threshold per (name, namespace)", () => {
    const perScope = new Map<string, number>();
    for (let slot = 0; slot < DEFAULT_TRAFFIC.poolSize; slot++) {
      for (const f of warmupRequest(DEFAULT_TRAFFIC, slot).meta.fingerprints) {
        const scope = `${f.namespace}/${f.signalName}`;
        perScope.set(scope, (perScope.get(scope) ?? 0) + 1);
      }
    }
    const busiest = Math.max(...perScope.values());
    expect(busiest).toBeLessThanOrEqual(STORM_THRESHOLD);
  });

  it("produces storms: many new alerts of one alertname in one namespace", () => {
    const config = { ...DEFAULT_TRAFFIC, stormEvery: 5000, stormLength: 400, stormShare: 0.5 };
    const storm = requests(config, 0, 5000).filter((r) => r.meta.source === "storm");
    expect(storm.length).toBeGreaterThan(150);
    expect(storm.length).toBeLessThan(250);
    const names = new Set(storm.map((r) => r.meta.fingerprints[0]?.signalName));
    const namespaces = new Set(storm.map((r) => r.meta.fingerprints[0]?.namespace));
    expect(names.size).toBe(1);
    expect(namespaces.size).toBe(1);
    expect(new Set(storm.map((r) => r.meta.fingerprints[0]?.input)).size).toBe(storm.length);
  });

  it("builds valid Alertmanager v4 webhooks and core/v1 Warning events", () => {
    const sample = requests(DEFAULT_TRAFFIC, 0, 3000);
    const sizes = new Set<number>();
    for (const r of sample) {
      const body = JSON.parse(r.body);
      expect(Buffer.byteLength(r.body)).toBeLessThan(256 * 1024);
      if (r.kind === "prometheus") {
        expect(r.path).toBe(PROMETHEUS_PATH);
        expect(body).toMatchObject({ version: "4", status: "firing", truncatedAlerts: 0 });
        expect(body.alerts).toHaveLength(r.meta.fingerprints.length);
        body.alerts.forEach((alert: { labels: Record<string, string> }, k: number) => {
          const f = r.meta.fingerprints[k];
          expect(alert.labels.alertname).toBe(f?.signalName);
          expect(alert.labels.namespace).toBe(f?.namespace);
          expect(alert.labels[f?.kind === "Pod" ? "pod" : "deployment"]).toBe(f?.name);
          expect({ ...alert.labels, ...body.commonLabels }).toEqual(alert.labels);
        });
        sizes.add(body.alerts.length);
      } else {
        expect(r.path).toBe(KUBERNETES_EVENT_PATH);
        expect(body).toMatchObject({
          type: "Warning",
          involvedObject: { kind: "Pod" },
          source: { component: "kubelet" },
        });
        expect(r.meta.fingerprints[0]?.input).toBe(
          `${body.reason}:${body.involvedObject.namespace}:Pod:${body.involvedObject.name}`,
        );
      }
      expect(NAMESPACES).toContain(r.meta.fingerprints[0]?.namespace);
    }
    expect([...sizes].sort()).toEqual([1, 2, 3, 4]);
  });

  it("reads its knobs from env and names a bad one", () => {
    expect(trafficConfigFromEnv({ SEED: "7", POOL_SIZE: "500" }, 0)).toMatchObject({
      seed: 7,
      poolSize: 500,
      newShare: 0.02,
    });
    expect(() => trafficConfigFromEnv({ NEW_SHARE: "2" }, 0)).toThrow(
      "NEW_SHARE must be a share between 0 and 1 (got: 2)",
    );
    expect(() => trafficConfigFromEnv({ POOL_SIZE: "many" }, 0)).toThrow(/POOL_SIZE must be a positive integer/);
  });
});
