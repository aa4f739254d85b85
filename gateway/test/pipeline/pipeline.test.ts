import { readdirSync } from "node:fs";
import type { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DataStorageService, type StartedDataStorageService } from "../../../harness/src/components/data-storage.js";
import type { StartedKubeApiServer } from "../../../harness/src/components/kube-api.js";
import { RedisServer, type StartedRedisServer } from "../../../harness/src/components/redis.js";
import { eventually } from "../../../harness/src/poll.js";
import { dedupKey } from "../../src/dedup.js";
import { stormFingerprint } from "../../src/storm.js";
import type { GatewayConfig, ProcessResult } from "../../src/types.js";
import {
  FALLBACK_NAMESPACE,
  listRRs,
  metricValue,
  nodeAlert,
  podAlert,
  type RunningPipeline,
  startKube,
  startPipeline,
  testConfig,
} from "./stack.js";

describe("pipeline against real Redis, kube-apiserver and Data Storage", () => {
  let redis: StartedRedisServer;
  let kube: StartedKubeApiServer;
  let ds: StartedDataStorageService;
  let run: RunningPipeline;
  let client: Redis;
  let baseConfig: GatewayConfig;

  beforeAll(async () => {
    [redis, kube, ds] = await Promise.all([
      new RedisServer().start(),
      startKube({ payments: { environment: "production" }, "storm-ns": {}, "ops-ns": {} }),
      new DataStorageService().start(),
    ]);
    baseConfig = testConfig({
      redis: { url: redis.getConnectionUrl() },
      kubernetes: { kubeconfigPath: kube.getKubeconfigPath() },
      dataStorage: { url: ds.getUrl(), bufferSize: 100, batchSize: 50 },
      processing: { environment: { overrides: { "ops-ns": "staging" } } },
    });
    run = await startPipeline(baseConfig);
    client = redis.client();
  });

  afterAll(async () => {
    client?.disconnect();
    await run?.pipeline.close();
    await Promise.all([redis?.stop(), kube?.stop(), ds?.stop()]);
  });

  const process = (signal: ReturnType<typeof podAlert>, requestId = "test") =>
    run.pipeline.process(signal, { requestId });

  it("creates one RemediationRequest on the first sighting and counts the duplicate into its status", async () => {
    const signal = podAlert({ namespace: "payments", severity: "critical" });
    const first = await process(signal);
    expect(first).toMatchObject({ status: "created", duplicate: false, environment: "production", priority: "P0" });

    const [rr, ...others] = await listRRs(kube, "payments", signal.fingerprint);
    expect(others).toHaveLength(0);
    expect(rr?.metadata.name).toBe(first.remediationRequestName);
    expect(rr?.metadata.name).toMatch(new RegExp(`^rr-${signal.fingerprint.slice(0, 12)}-[a-f0-9]{8}$`));
    expect(rr?.metadata.labels).toMatchObject({
      "app.kubernetes.io/managed-by": "gateway",
      "kubernaut.ai/signal-fingerprint": signal.fingerprint.slice(0, 63),
      "kubernaut.ai/severity": "critical",
      "kubernaut.ai/priority": "P0",
      "kubernaut.ai/environment": "production",
      "kubernaut.ai/signal-type": "prometheus-alert",
    });
    expect(rr?.spec).toMatchObject({
      signalFingerprint: signal.fingerprint,
      targetType: "kubernetes",
      targetResource: signal.resource,
    });
    expect(JSON.parse(Buffer.from(String(rr?.spec.originalPayload), "base64").toString())).toEqual(signal.rawPayload);
    // The first status is written right after the creation, off the creator's answer.
    await eventually(
      async () => {
        const status = (await listRRs(kube, "payments", signal.fingerprint))[0]?.status;
        return status?.overallPhase === "Pending" && status.deduplication?.occurrenceCount === 1;
      },
      { what: "status Pending with occurrenceCount 1", timeoutMs: 5_000 },
    );

    const hash = await client.hgetall(dedupKey(signal.fingerprint));
    expect(hash).toMatchObject({
      fingerprint: signal.fingerprint,
      signalName: signal.signalName,
      namespace: "payments",
      count: "1",
      remediationRequestRef: `payments/${rr?.metadata.name}`,
    });
    expect(await client.pttl(dedupKey(signal.fingerprint))).toBeGreaterThan(4 * 60_000);

    const second = await process(signal);
    expect(Object.keys(second).sort()).toEqual(
      [
        "status",
        "message",
        "fingerprint",
        "duplicate",
        "remediationRequestName",
        "remediationRequestNamespace",
        "environment",
        "priority",
        "occurrenceCount",
        "firstSeenAt",
        "lastSeenAt",
      ].sort(),
    );
    expect(second).toMatchObject({
      status: "duplicate",
      duplicate: true,
      occurrenceCount: 2,
      remediationRequestName: rr?.metadata.name,
    });
    await eventually(
      async () =>
        (await listRRs(kube, "payments", signal.fingerprint))[0]?.status?.deduplication?.occurrenceCount === 2,
      { what: "status.deduplication.occurrenceCount to reach 2", timeoutMs: 5_000 },
    );
  });

  it("creates exactly one RemediationRequest for 50 concurrent first sightings and counts all 50", async () => {
    const signal = podAlert({ namespace: "default" });
    const results = await Promise.all(Array.from({ length: 50 }, (_, i) => process(signal, `req-${i}`)));
    expect(results.filter((r) => r.status === "created")).toHaveLength(1);
    expect(results.filter((r) => r.status === "duplicate")).toHaveLength(49);
    const name = results.find((r) => r.status === "created")?.remediationRequestName;
    expect(new Set(results.map((r) => r.remediationRequestName))).toEqual(new Set([name]));

    expect(await listRRs(kube, "default", signal.fingerprint)).toHaveLength(1);
    expect(await client.hget(dedupKey(signal.fingerprint), "count")).toBe("50");
    await eventually(
      async () =>
        (await listRRs(kube, "default", signal.fingerprint))[0]?.status?.deduplication?.occurrenceCount === 50,
      { what: "occurrenceCount 50 in status", timeoutMs: 5_000 },
    );
  });

  it("places node signals and signals of missing namespaces in the fallback namespace, labelled with the origin", async () => {
    const node = nodeAlert("worker-1");
    expect(await process(node)).toMatchObject({ status: "created", remediationRequestNamespace: FALLBACK_NAMESPACE });
    const [nodeRR] = await listRRs(kube, FALLBACK_NAMESPACE, node.fingerprint);
    expect(nodeRR?.metadata.labels["kubernaut.ai/origin-namespace"]).toBe("cluster-scoped");
    expect(nodeRR?.spec.targetResource).toEqual({ kind: "Node", name: "worker-1" });

    const ghost = podAlert({ namespace: "ghost" });
    expect(await process(ghost)).toMatchObject({ status: "created", remediationRequestNamespace: FALLBACK_NAMESPACE });
    const [ghostRR] = await listRRs(kube, FALLBACK_NAMESPACE, ghost.fingerprint);
    expect(ghostRR?.metadata.labels["kubernaut.ai/origin-namespace"]).toBe("ghost");
    expect(await listRRs(kube, "ghost")).toHaveLength(0);
  });

  it("takes the environment from the override map when the namespace has no label", async () => {
    const result = await process(podAlert({ namespace: "ops-ns", severity: "critical" }));
    expect(result).toMatchObject({ status: "created", environment: "staging", priority: "P1" });
    const unlabelled = await process(podAlert({ namespace: "default", severity: "critical" }));
    expect(unlabelled).toMatchObject({ environment: "unknown", priority: "P2" });
  });

  it("folds a storm into one aggregated RemediationRequest when the window closes", async () => {
    run.setConfig(
      testConfig({
        redis: { url: redis.getConnectionUrl() },
        kubernetes: { kubeconfigPath: kube.getKubeconfigPath() },
        dataStorage: { url: ds.getUrl(), journalDir: baseConfig.dataStorage.journalDir },
        processing: { storm: { rateThreshold: 3, aggregationWindow: "2s" } },
      }),
    );
    try {
      const alerts = Array.from({ length: 8 }, (_, i) =>
        podAlert({ name: "PodOOM", namespace: "storm-ns", pod: `web-${i}` }),
      );
      const results: ProcessResult[] = [];
      for (const alert of alerts) results.push(await process(alert));
      expect(results.map((r) => r.status)).toEqual([
        "created",
        "created",
        "created",
        "storm-aggregated",
        "storm-aggregated",
        "storm-aggregated",
        "storm-aggregated",
        "storm-aggregated",
      ]);
      // Same name in another namespace: its own window, not this storm.
      expect((await process(podAlert({ name: "PodOOM", namespace: "default" }))).status).toBe("created");

      const stormFp = stormFingerprint("storm-ns", "PodOOM");
      const storm = await eventually(async () => (await listRRs(kube, "storm-ns", stormFp))[0] ?? false, {
        what: "the aggregated storm RemediationRequest",
        timeoutMs: 10_000,
      });
      expect(storm.spec).toMatchObject({ isStorm: true, stormType: "rate", stormWindow: "2s", stormAlertCount: 5 });
      expect((storm.spec.affectedResources as { name: string }[]).map((r) => r.name).sort()).toEqual([
        "web-3",
        "web-4",
        "web-5",
        "web-6",
        "web-7",
      ]);
      expect(await listRRs(kube, "storm-ns")).toHaveLength(4); // 3 individual + 1 storm
      expect(await metricValue(run.metrics, "gateway_storms_detected_total")).toBe(1);

      // A later occurrence of a folded alert is a duplicate of the storm request.
      const again = await process(alerts[5] as ReturnType<typeof podAlert>);
      expect(again).toMatchObject({ status: "duplicate", remediationRequestName: storm.metadata.name });
      await eventually(
        async () => (await listRRs(kube, "storm-ns", stormFp))[0]?.status?.deduplication?.occurrenceCount === 6,
        { what: "storm request occurrenceCount 6", timeoutMs: 5_000 },
      );
    } finally {
      run.setConfig(baseConfig);
    }
  });

  it("keeps serving while Data Storage fails, journals audit events and delivers them in order afterwards", async () => {
    const signal = podAlert({ namespace: "payments" });
    await ds.setFault("fail");
    const sent = 120; // 240+ events: more than the 100-event memory buffer holds
    const started = Date.now();
    for (let i = 0; i < sent; i++) {
      expect((await process(signal)).status).toBe(i === 0 ? "created" : "duplicate");
    }
    expect(Date.now() - started).toBeLessThan(15_000);
    await eventually(async () => (await metricValue(run.metrics, "gateway_audit_journal_bytes")) > 0, {
      what: "audit events spilled to the journal",
    });
    expect(readdirSync(run.config().dataStorage.journalDir).some((f) => f.endsWith(".jsonl"))).toBe(true);

    await ds.setFault("none");
    const events = await eventually(
      async () => {
        const found = await ds.events({ correlation_id: signal.fingerprint, limit: 1000 });
        return found.length === sent * 2 && found;
      },
      { what: `${sent * 2} audit events of the signal in Data Storage`, timeoutMs: 30_000 },
    );
    const types = events.map((e) => e.event_type);
    expect(types.slice(0, 2)).toEqual(["gateway.signal.received", "gateway.crd.created"]);
    expect(types.slice(2)).toEqual(
      Array.from({ length: sent - 1 }, () => ["gateway.signal.received", "gateway.signal.deduplicated"]).flat(),
    );
    const counts = events
      .filter((e) => e.event_type === "gateway.signal.deduplicated")
      .map((e) => e.event_data.occurrence_count);
    expect(counts).toEqual(Array.from({ length: sent - 1 }, (_, i) => i + 2));
    expect(await metricValue(run.metrics, "gateway_audit_events_dropped_total")).toBe(0);
    await eventually(async () => (await metricValue(run.metrics, "gateway_audit_journal_bytes")) === 0, {
      what: "the journal to be drained",
    });
  });
});
