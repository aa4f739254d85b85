import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RedisSentinelGroup, type StartedRedisSentinelGroup } from "../../../harness/src/components/redis-sentinel.js";
import { eventually } from "../../../harness/src/poll.js";
import { freePort } from "../../../harness/src/ports.js";
import { createMetrics } from "../../src/metrics.js";
import { RedisLink, RedisUnavailableError } from "../../src/redis-link.js";
import { sleep } from "../../src/retry.js";
import { metricValue, testConfig, testLog } from "./stack.js";

// Sentinel promotes the replica it last saw furthest ahead, which need not be the one that
// acknowledged a write first: a write only counts as safe once every online replica has it.
describe("RedisLink with a Sentinel group: writes confirmed by every online replica", () => {
  let group: StartedRedisSentinelGroup;
  let link: RedisLink;
  const metrics = createMetrics();

  beforeAll(async () => {
    group = await new RedisSentinelGroup().withReplicas(2).withSentinels(3).start();
    const cfg = testConfig({
      redis: {
        mode: "sentinel",
        sentinels: group.getSentinels().map((s) => `${s.host}:${s.port}`),
        masterName: group.getMasterName(),
      },
      kubernetes: { kubeconfigPath: "/nonexistent" },
      dataStorage: { url: `http://127.0.0.1:${await freePort()}` },
    });
    link = new RedisLink(cfg.redis, metrics, testLog);
  });

  afterAll(async () => {
    await link?.close();
    await group?.stop();
  });

  /** Frozen, a replica stays connected and online for the master, but acknowledges nothing. */
  async function withReplicaFrozen(during: () => Promise<void>): Promise<void> {
    const frozen = group.getServer(group.getNodes()[1] as { host: string; port: number });
    frozen.process.pause();
    try {
      await during();
    } finally {
      frozen.process.resume();
    }
  }

  it("answers a write once both replicas have it", async () => {
    await expect(link.runConfirmed("test", (r) => r.set("confirmed", "1"))).resolves.toBe("OK");
    for (const replica of group.getNodes().slice(1)) {
      const direct = group.getServer(replica).client();
      try {
        expect(await direct.get("confirmed")).toBe("1");
      } finally {
        direct.disconnect();
      }
    }
  });

  it("does not count a write as confirmed while one of the two replicas does not acknowledge it", async () => {
    await withReplicaFrozen(async () => {
      await expect(link.runConfirmed("test", (r) => r.set("unconfirmed", "1"))).rejects.toThrow(RedisUnavailableError);
      expect(
        await metricValue(metrics, "gateway_redis_operations_total", { operation: "test", result: "unconfirmed" }),
      ).toBeGreaterThan(0);
    });
    // Both replicas answering again, the link recovers by itself and confirms writes again.
    await eventually(() => link.available(), { what: "the link available again", timeoutMs: 15_000 });
    await expect(link.runConfirmed("test", (r) => r.set("after", "1"))).resolves.toBe("OK");
  });

  // WAIT blocks the connection it is sent on: on a shared connection every read and write queues
  // behind it, and under load that wait becomes the gateway's latency (the failover tail).
  it("answers other commands at once while a confirmed write waits for the replicas", async () => {
    const slowest: number[] = [];
    await withReplicaFrozen(async () => {
      // Unacknowledged, the write's WAIT runs to its timeout again and again until the deadline.
      const confirmed = link.runConfirmed("test", (r) => r.set("waiting", "1")).catch(() => undefined);
      for (let i = 0; i < 12; i++) {
        const started = performance.now();
        await link.run("test-read", (r) => r.get("confirmed"));
        slowest.push(performance.now() - started);
        await sleep(30); // spreads the reads over the WAITs and the pauses between them
      }
      await confirmed;
    });
    expect(Math.max(...slowest), `read latencies ${slowest.map((ms) => ms.toFixed(0)).join(", ")} ms`).toBeLessThan(
      100,
    );
    await eventually(() => link.available(), { what: "the link available again", timeoutMs: 15_000 });
  });
});
