import type { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { StartedKubeApiServer } from "../../../harness/src/components/kube-api.js";
import { RedisServer, type StartedRedisServer } from "../../../harness/src/components/redis.js";
import { eventually } from "../../../harness/src/poll.js";
import { freePort } from "../../../harness/src/ports.js";
import { dedupKey } from "../../src/dedup.js";
import { createMetrics } from "../../src/metrics.js";
import { RedisLink } from "../../src/redis-link.js";
import { stormFingerprint } from "../../src/storm.js";
import { RedisStormStore, type StormCheck, windowKey } from "../../src/storm-store.js";
import type { GatewayConfig, ProcessResult, Signal } from "../../src/types.js";
import {
  listRRs,
  metricValue,
  podAlert,
  type RunningPipeline,
  startKube,
  startPipeline,
  testConfig,
  testLog,
} from "./stack.js";

/**
 * D2 exactly: every signal answered 2xx is counted once, also when a Redis
 * call ran on the server but its answer came too late and the call was
 * retried (a busy gateway's event loop, a stalled Redis).
 */
describe("accounting when Redis answers too late", () => {
  let redis: StartedRedisServer;
  let kube: StartedKubeApiServer;
  let run: RunningPipeline;
  let client: Redis;
  let cfg: GatewayConfig;

  beforeAll(async () => {
    [redis, kube] = await Promise.all([new RedisServer().start(), startKube({ tally: {}, "tally-storm": {} })]);
    cfg = testConfig({
      redis: { url: redis.getConnectionUrl() },
      kubernetes: { kubeconfigPath: kube.getKubeconfigPath() },
      dataStorage: { url: `http://127.0.0.1:${await freePort()}` },
      processing: { storm: { rateThreshold: 3, aggregationWindow: "3s" } },
    });
    run = await startPipeline(cfg);
    client = redis.client();
  });

  afterAll(async () => {
    client?.disconnect();
    await run?.pipeline.close();
    await Promise.all([redis?.stop(), kube?.stop()]);
  });

  const process = (signal: Signal) => run.pipeline.process(signal, { requestId: "acct" });
  const sightRetries = () =>
    metricValue(run.metrics, "gateway_redis_operations_total", { operation: "sight", result: "retry" });

  /** Processes `signal` while Redis is frozen, thawing it once the gateway has retried the sighting. */
  const processThroughStall = async (signal: Signal): Promise<ProcessResult> => {
    const before = await sightRetries();
    redis.process.pause();
    let answer: Promise<ProcessResult>;
    try {
      answer = process(signal);
      await eventually(async () => (await sightRetries()) > before, {
        what: "the gateway to give up on the first answer and retry the sighting",
        timeoutMs: 5_000,
        intervalMs: 20,
      });
    } finally {
      redis.process.resume();
    }
    return answer;
  };

  it("counts a duplicate once when its sighting ran in Redis but was retried", async () => {
    const signal = podAlert({ namespace: "tally" });
    expect((await process(signal)).status).toBe("created");

    const dup = await processThroughStall(signal);
    expect(dup).toMatchObject({ status: "duplicate", occurrenceCount: 2 });
    expect(await client.hget(dedupKey(signal.fingerprint), "count")).toBe("2");
    await eventually(
      async () => (await listRRs(kube, "tally", signal.fingerprint))[0]?.status?.deduplication?.occurrenceCount === 2,
      { what: "occurrenceCount 2 in status", timeoutMs: 5_000 },
    );
  });

  it("counts a storm member's repeat once in its fingerprint and once in the storm", async () => {
    const alerts = Array.from({ length: 5 }, (_, i) =>
      podAlert({ name: "TallyOOM", namespace: "tally-storm", pod: `p-${i}` }),
    );
    const answers: ProcessResult[] = [];
    for (const alert of alerts) answers.push(await process(alert));
    expect(answers.map((a) => a.status)).toEqual([
      "created",
      "created",
      "created",
      "storm-aggregated",
      "storm-aggregated",
    ]);

    const member = alerts[4] as Signal;
    const repeat = await processThroughStall(member);
    expect(repeat.status).toMatch(/^(storm-aggregated|duplicate)$/);
    expect(await client.hget(dedupKey(member.fingerprint), "count")).toBe("2");

    // Three answers went to the storm (two first sightings and the repeat): its request counts three.
    const stormFp = stormFingerprint("tally-storm", "TallyOOM");
    await eventually(
      async () => (await listRRs(kube, "tally-storm", stormFp))[0]?.status?.deduplication?.occurrenceCount === 3,
      { what: "the storm request to count its three signals", timeoutMs: 15_000 },
    );
  });

  it("folds a storm member into its window once when the storm check is run again", async () => {
    const link = new RedisLink(cfg.redis, createMetrics(), testLog);
    try {
      const store = new RedisStormStore(link);
      const signal = podAlert({ name: "TallyRetry", namespace: "tally-storm" });
      // The dedup hash of a claimed first sighting (as the Lua check-and-claim leaves it).
      await client.hset(dedupKey(signal.fingerprint), {
        fingerprint: signal.fingerprint,
        count: 1,
        remediationRequestRef: "",
        claim: "t-1",
      });
      const check: StormCheck = {
        scope: "tally-retry-scope",
        fingerprint: signal.fingerprint,
        resource: signal.resource,
        template: { signal, environment: "unknown", priority: "P2" },
        nowMs: Date.now(),
        detectionWindowMs: 60_000,
        rateThreshold: 0,
        aggregationWindowMs: 60_000,
        keepMs: 120_000,
        ttlMs: 300_000,
      };
      const first = await store.check(check);
      expect(first).toMatchObject({ opened: true });
      // The same call again, as a retry after a lost answer sends it.
      const again = await store.check(check);
      expect(again).toEqual(first);
      expect(await client.hget(windowKey(first?.windowId ?? ""), "count")).toBe("1");
      expect(await client.hget(dedupKey(signal.fingerprint), "remediationRequestRef")).toBe(`storm:${first?.windowId}`);
    } finally {
      await link.close();
    }
  });
});
