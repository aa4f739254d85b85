import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { StartedKubeApiServer } from "../../../harness/src/components/kube-api.js";
import { RedisServer, type StartedRedisServer } from "../../../harness/src/components/redis.js";
import { eventually } from "../../../harness/src/poll.js";
import { freePort } from "../../../harness/src/ports.js";
import { dedupKey } from "../../src/dedup-scripts.js";
import { ProblemError, type Signal } from "../../src/types.js";
import {
  listRRs,
  metricValue,
  pipelineOnRealStack,
  podAlert,
  type RunningPipeline,
  startKube,
  startPipeline,
  testConfig,
} from "./stack.js";

describe("pipeline with Redis down: deduplication via the Kubernetes API", () => {
  let redis: StartedRedisServer;
  let kube: StartedKubeApiServer;
  let run: RunningPipeline;

  beforeAll(async () => {
    [redis, kube] = await Promise.all([new RedisServer().start(), startKube({ shop: {} })]);
    run = await startPipeline(
      testConfig({
        redis: { url: redis.getConnectionUrl() },
        kubernetes: { kubeconfigPath: kube.getKubeconfigPath() },
        // No Data Storage here: audit delivery failing must not matter to signals.
        dataStorage: { url: `http://127.0.0.1:${await freePort()}` },
      }),
    );
  });

  afterAll(async () => {
    await run?.pipeline.close();
    await Promise.all([redis?.stop(), kube?.stop()]);
  });

  const process = (signal: Signal) => run.pipeline.process(signal, { requestId: "test" });
  const statusCount = async (signal: Signal) =>
    (await listRRs(kube, "shop", signal.fingerprint))[0]?.status?.deduplication?.occurrenceCount;

  it("keeps deduplicating against RemediationRequests while Redis is down and recovers when it returns", async () => {
    const known = podAlert({ namespace: "shop" });
    const created = await process(known);
    expect(created.status).toBe("created");

    await redis.kill();
    const dup = await process(known);
    expect(dup).toMatchObject({ status: "duplicate", remediationRequestName: created.remediationRequestName });
    expect(await metricValue(run.metrics, "gateway_redis_available")).toBe(0);
    expect(run.pipeline.health()).toEqual({ redis: false, kubernetes: true });

    // New fingerprints are created through the API alone; concurrent first sightings still make one request.
    const fresh = podAlert({ namespace: "shop" });
    const results = await Promise.all(Array.from({ length: 20 }, () => process(fresh)));
    expect(results.filter((r) => r.status === "created")).toHaveLength(1);
    expect(await listRRs(kube, "shop", fresh.fingerprint)).toHaveLength(1);
    await eventually(async () => (await statusCount(known)) === 2 && (await statusCount(fresh)) === 20, {
      what: "degraded-mode occurrences in status.deduplication",
      timeoutMs: 5_000,
    });

    await redis.start(); // empty: everything Redis knew is gone
    await eventually(async () => (await metricValue(run.metrics, "gateway_redis_available")) === 1, {
      what: "gateway_redis_available back to 1",
    });
    // Redis has no record: the claimer finds the active request and adopts it, with its count.
    const adopted = await process(known);
    expect(adopted).toMatchObject({
      status: "duplicate",
      remediationRequestName: created.remediationRequestName,
      occurrenceCount: 3,
    });
    expect(await listRRs(kube, "shop", known.fingerprint)).toHaveLength(1);
    await eventually(async () => (await statusCount(known)) === 3, {
      what: "adopted count in status",
      timeoutMs: 5_000,
    });
  });

  it("answers 503 with Retry-After only when neither Redis nor the Kubernetes API is usable", async () => {
    await redis.kill();
    await kube.stopApiServer();
    try {
      const failure = await process(podAlert({ namespace: "shop" })).catch((err: unknown) => err);
      expect(failure).toBeInstanceOf(ProblemError);
      expect(failure).toMatchObject({ status: 503 });
      expect((failure as ProblemError).retryAfter).toBeGreaterThan(0);
      expect(run.pipeline.health()).toEqual({ redis: false, kubernetes: false });
    } finally {
      await Promise.all([redis.start(), kube.startApiServer()]);
    }
    await eventually(() => run.pipeline.health().redis && run.pipeline.health().kubernetes, {
      what: "both dependencies usable again",
      timeoutMs: 15_000,
    });
    expect((await process(podAlert({ namespace: "shop" }))).status).toBe("created");
  });
});

describe("Redis back while degraded-mode counts are still on their way to status", () => {
  // A long flush interval: the counts reach status after Redis is back, and the flusher's next pass
  // (which adds them to the hashes) is an interval later, after the adoption.
  const FLUSH_MS = 3_000;
  const stack = pipelineOnRealStack(
    { shop: {} },
    { processing: { deduplication: { statusFlushInterval: `${FLUSH_MS}ms` } } },
  );

  const process = (signal: Signal) => stack.run.pipeline.process(signal, { requestId: "test" });
  const statusCount = async (signal: Signal) =>
    (await listRRs(stack.kube, "shop", signal.fingerprint))[0]?.status?.deduplication?.occurrenceCount;

  it("records a request created without Redis in Redis once it is back, though its signal is not seen again", async () => {
    await stack.redis.kill();
    const signal = podAlert({ namespace: "shop" });
    const created = await process(signal);
    expect(created.status).toBe("created");
    for (let i = 0; i < 2; i++) expect((await process(signal)).status).toBe("duplicate");
    await stack.redis.start(); // empty: the request is unknown to Redis
    const client = stack.redis.client();
    try {
      const hash = () => client.hgetall(dedupKey(signal.fingerprint));
      await eventually(
        async () => {
          const seen = await hash();
          if (seen.count !== "3") throw new Error(`hash ${JSON.stringify(seen)}`);
        },
        { what: "the request's hash with its 3 occurrences", timeoutMs: 4 * FLUSH_MS },
      );
      expect((await hash()).remediationRequestRef).toBe(`shop/${created.remediationRequestName}`);
    } finally {
      client.disconnect();
    }
    expect(await statusCount(signal)).toBe(3);
  });

  it("counts each occurrence once when a request created without Redis is adopted", async () => {
    await stack.redis.kill();
    const signal = podAlert({ namespace: "shop" });
    expect((await process(signal)).status).toBe("created");
    for (let i = 0; i < 3; i++) expect((await process(signal)).status).toBe("duplicate");
    await stack.redis.start(); // empty: the request is unknown to Redis
    await eventually(async () => (await metricValue(stack.run.metrics, "gateway_redis_available")) === 1, {
      what: "gateway_redis_available back to 1",
    });
    await eventually(async () => (await statusCount(signal)) === 4, {
      what: "the degraded-mode count in status",
      timeoutMs: 2 * FLUSH_MS,
      intervalMs: 20,
    });
    // The claimer adopts the request with the count status holds (4), and adds its own.
    expect(await process(signal)).toMatchObject({ status: "duplicate", occurrenceCount: 5 });
    // A client of the restarted Redis (the stack's own was connected to the killed one).
    const client = stack.redis.client();
    try {
      const hashCount = async () => Number(await client.hget(dedupKey(signal.fingerprint), "count"));
      // The degraded-mode counts are already in that 4: adding them to the hash as well counts them twice.
      const observedUntil = Date.now() + 2 * FLUSH_MS;
      await eventually(async () => (await hashCount()) !== 5 || Date.now() >= observedUntil, {
        what: "two flush intervals of the hash count",
        timeoutMs: 3 * FLUSH_MS,
      });
      expect(await hashCount()).toBe(5);
    } finally {
      client.disconnect();
    }
    await eventually(async () => (await statusCount(signal)) === 5, {
      what: "status count 5",
      timeoutMs: 2 * FLUSH_MS,
    });
  });
});
