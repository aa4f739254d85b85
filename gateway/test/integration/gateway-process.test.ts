/**
 * The gateway as a process (harness GatewayProcess) against real Redis, a real
 * API server enforcing the CRD schema and a real Prometheus. Every check reads
 * real state (Redis keys, RemediationRequests, Prometheus series).
 */
import type { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GatewayProcess, type StartedGateway } from "../../../harness/src/components/gateway.js";
import type { StartedKubeApiServer } from "../../../harness/src/components/kube-api.js";
import { PrometheusServer } from "../../../harness/src/components/prometheus.js";
import { RedisServer, type StartedRedisServer } from "../../../harness/src/components/redis.js";
import { eventually } from "../../../harness/src/poll.js";
import { freePort } from "../../../harness/src/ports.js";
import { listRRs, startKube } from "../pipeline/stack.js";

const PROM_PATH = "/api/v1/signals/prometheus";

interface Outcome {
  status?: number;
  retryAfter?: string | null;
  fingerprint?: string;
  error?: string;
}

let sequence = 0;

function alertBody(namespace: string): string {
  const pod = `pod-${process.pid}-${++sequence}`;
  return JSON.stringify({
    version: "4",
    status: "firing",
    receiver: "gateway",
    alerts: [
      {
        status: "firing",
        labels: { alertname: "KubePodCrashLooping", namespace, pod, severity: "warning" },
        annotations: { summary: "crash looping" },
        startsAt: new Date().toISOString(),
      },
    ],
  });
}

async function sendAlert(url: string, namespace: string, headers: Record<string, string> = {}): Promise<Outcome> {
  try {
    const res = await fetch(`${url}${PROM_PATH}`, {
      method: "POST",
      body: alertBody(namespace),
      headers: { "content-type": "application/json", ...headers },
      signal: AbortSignal.timeout(20_000),
    });
    const body = (await res.json()) as { fingerprint?: string };
    return { status: res.status, retryAfter: res.headers.get("retry-after"), fingerprint: body.fingerprint };
  } catch (err) {
    return { error: `${(err as Error).message} ${(err as { cause?: Error }).cause?.message ?? ""}` };
  }
}

/** Concurrent senders, each bounded by count and time; `until` ends the run early. */
function traffic(
  url: string,
  namespace: string,
  opts: { workers: number; maxRequests: number; maxMs: number; until: () => boolean },
) {
  const outcomes: Outcome[] = [];
  const deadline = Date.now() + opts.maxMs;
  const worker = async () => {
    while (outcomes.length < opts.maxRequests && Date.now() < deadline && !opts.until()) {
      outcomes.push(await sendAlert(url, namespace));
    }
  };
  const done = Promise.all(Array.from({ length: opts.workers }, worker)).then(() => outcomes);
  return { outcomes, done };
}

describe("gateway process", () => {
  let redis: StartedRedisServer;
  let kube: StartedKubeApiServer;
  let redisClient: Redis;
  let unreachableDataStorage: string;

  beforeAll(async () => {
    [redis, kube] = await Promise.all([
      new RedisServer().start(),
      startKube({ reload: {}, drain: {}, auth: {}, scrape: { environment: "production" } }),
    ]);
    redisClient = redis.client();
    // Audit delivery is not under test here: events go to the on-disk journal.
    unreachableDataStorage = `http://127.0.0.1:${await freePort()}`;
  });

  afterAll(async () => {
    redisClient?.disconnect();
    await Promise.all([redis?.stop(), kube?.stop()]);
  });

  const gateway = () =>
    new GatewayProcess()
      .withConfig({
        redis: { url: redis.getConnectionUrl() },
        dataStorage: { url: unreachableDataStorage },
        rateLimit: { enabled: false },
        // Distinct pods of one alert name would form a storm; here each alert must stand alone.
        processing: { storm: { enabled: false } },
        // Data Storage is unreachable: do not wait long for the audit flush on shutdown.
        shutdown: { auditFlushTimeout: "1s" },
      })
      .withEnv({ GATEWAY_KUBECONFIG: kube.getKubeconfigPath() });

  const ttlOf = (fingerprint: string | undefined) => redisClient.pttl(`gateway:dedup:fingerprint:${fingerprint}`);

  it("reloads under traffic: no request fails, reloadable values apply, a bad file and restart-only changes do not", async () => {
    const gw = await gateway().start();
    let finished = false;
    const load = traffic(gw.getUrl(), "reload", {
      workers: 3,
      maxRequests: 3000,
      maxMs: 60_000,
      until: () => finished,
    });
    try {
      const first = await sendAlert(gw.getUrl(), "reload");
      expect(first.status).toBe(201);
      expect(await ttlOf(first.fingerprint)).toBeGreaterThan(60_000); // default 5m

      expect(
        await gw.updateConfig({
          processing: { deduplication: { ttl: "30s" } },
          server: { listenAddress: "127.0.0.1:1" },
        }),
      ).toBe("success");
      const second = await sendAlert(gw.getUrl(), "reload");
      expect(second.status).toBe(201); // still on the old address: listenAddress is restart-only
      const ttl = await ttlOf(second.fingerprint);
      expect(ttl).toBeGreaterThan(0);
      expect(ttl).toBeLessThanOrEqual(30_000);
      expect(gw.process.logTail(500)).toContain("configuration change to 'server.listenAddress' needs a restart");

      expect(await gw.writeConfigFile("processing:\n  deduplication:\n    ttl: 2s\n")).toBe("failure");
      const third = await sendAlert(gw.getUrl(), "reload");
      expect(await ttlOf(third.fingerprint)).toBeGreaterThan(2_000); // the 30s configuration stayed in force
      expect(gw.process.logTail(500)).toContain("must be between 10s and 24h (got: 2s)");

      expect(await gw.updateConfig({ processing: { deduplication: { ttl: "45s" } } })).toBe("success");
      expect(await gw.reload()).toBe("success"); // SIGHUP
      const fourth = await sendAlert(gw.getUrl(), "reload");
      expect(await ttlOf(fourth.fingerprint)).toBeGreaterThan(30_000);
    } finally {
      finished = true;
      await load.done;
      await gw.stop();
    }
    const failed = load.outcomes.filter((o) => o.status !== 201);
    expect(load.outcomes.length).toBeGreaterThan(20);
    expect(failed).toEqual([]);
  });

  it("drains on SIGTERM under traffic: exit 0, every 2xx recorded in Kubernetes, everything else retryable", async () => {
    const gw = await gateway()
      .withConfig({ shutdown: { gracePeriod: "1s", drainTimeout: "20s" } })
      .start();
    let stopped = false;
    const load = traffic(gw.getUrl(), "drain", { workers: 4, maxRequests: 3000, maxMs: 60_000, until: () => stopped });
    await eventually(() => load.outcomes.length >= 30, { what: "30 requests before SIGTERM", timeoutMs: 30_000 });
    const exit = await gw.stop(); // throws unless the exit code is 0
    expect(exit.code).toBe(0);
    stopped = true;
    const outcomes = await load.done;

    const accepted = outcomes.filter((o) => o.status === 201);
    const refused = outcomes.filter((o) => o.status === 503);
    const unreachable = outcomes.filter((o) => o.error !== undefined);
    expect(accepted.length).toBeGreaterThanOrEqual(30);
    expect(accepted.length + refused.length + unreachable.length).toBe(outcomes.length);
    for (const r of refused) expect(r.retryAfter).toMatch(/^\d+$/);
    for (const u of unreachable) expect(u.error).toMatch(/ECONNREFUSED|ECONNRESET|other side closed|fetch failed/);

    const recorded = new Set((await listRRs(kube, "drain")).map((rr) => rr.spec.signalFingerprint));
    const lost = accepted.filter((o) => !recorded.has(o.fingerprint as string));
    expect(lost).toEqual([]);
  });

  it("authenticates callers with a real TokenReview", async () => {
    const token = await kube.serviceAccountToken("auth", "alertmanager");
    const gw = await gateway()
      .withConfig({ auth: { enabled: true } })
      .start();
    try {
      expect((await sendAlert(gw.getUrl(), "auth")).status).toBe(401);
      expect((await sendAlert(gw.getUrl(), "auth", { authorization: "Bearer not-a-real-token" })).status).toBe(401);
      const ok = await sendAlert(gw.getUrl(), "auth", { authorization: `Bearer ${token}` });
      expect(ok.status).toBe(201);
      expect(await listRRs(kube, "auth", ok.fingerprint)).toHaveLength(1);
      expect(await listRRs(kube, "auth")).toHaveLength(1); // the refused ones created nothing
    } finally {
      await gw.stop();
    }
  });

  it("exposes metrics that a real Prometheus scrapes", async () => {
    const gw: StartedGateway = await gateway().start();
    const prom = await new PrometheusServer().withScrapeTarget("gateway", new URL(gw.getUrl()).host).start();
    try {
      const created = await sendAlert(gw.getUrl(), "scrape");
      expect(created.status).toBe(201);
      expect((await sendAlert(gw.getUrl(), "scrape")).status).toBe(201);
      const bad = await fetch(`${gw.getUrl()}${PROM_PATH}`, {
        method: "POST",
        body: "{",
        headers: { "content-type": "application/json" },
      });
      expect(bad.status).toBe(400);

      const value = async (promql: string) => (await prom.query(promql))[0]?.value;
      await eventually(
        async () => (await value(`sum(gateway_http_requests_total{route="${PROM_PATH}",status="201"})`)) === 2,
        { what: "Prometheus to see the two 201 answers", timeoutMs: 30_000, intervalMs: 500 },
      );
      expect(await value(`sum(gateway_http_requests_total{route="${PROM_PATH}",status="400"})`)).toBe(1);
      expect(await value(`sum(gateway_crd_created_total)`)).toBe(2);
      expect(await value(`sum(gateway_alerts_received_total{source="prometheus-alert"})`)).toBe(2);
      expect(await value("gateway_redis_available")).toBe(1);
      expect(await value("gateway_http_requests_in_flight")).toBeGreaterThanOrEqual(0);
      const p99 = await prom.waitForSeries(
        `histogram_quantile(0.99, sum by (le) (gateway_http_request_duration_seconds_bucket{route="${PROM_PATH}"}))`,
      );
      expect(p99[0]?.value).toBeGreaterThan(0);
      expect(p99[0]?.value).toBeLessThanOrEqual(5);
      for (const name of [
        "gateway_processing_duration_seconds_bucket",
        "gateway_redis_operations_total",
        "process_resident_memory_bytes",
      ]) {
        expect((await prom.query(name)).length, name).toBeGreaterThan(0);
      }
    } finally {
      await prom.stop();
      await gw.stop();
    }
  });
});
