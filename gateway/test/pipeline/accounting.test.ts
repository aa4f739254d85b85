import { describe, expect, it } from "vitest";
import { eventually } from "../../../harness/src/poll.js";
import { dedupKey } from "../../src/dedup.js";
import { ADD_COUNT, RECORD } from "../../src/dedup-scripts.js";
import { createMetrics } from "../../src/metrics.js";
import { RedisLink } from "../../src/redis-link.js";
import { stormFingerprint } from "../../src/storm.js";
import { RedisStormStore, type StormCheck, windowKey } from "../../src/storm-store.js";
import type { ProcessResult, Signal } from "../../src/types.js";
import { listRRs, metricValue, pipelineOnRealStack, podAlert, testLog } from "./stack.js";

/**
 * D2 exactly: every signal answered 2xx is counted once, also when a Redis
 * call ran on the server but its answer came too late and the call was
 * retried (a busy gateway's event loop, a stalled Redis).
 */
describe("accounting when Redis answers too late", () => {
  const stack = pipelineOnRealStack(
    { tally: {}, "tally-storm": {} },
    { processing: { storm: { rateThreshold: 3, aggregationWindow: "3s" } } },
  );

  const process = (signal: Signal) => stack.run.pipeline.process(signal, { requestId: "acct" });
  const sightRetries = () =>
    metricValue(stack.run.metrics, "gateway_redis_operations_total", { operation: "sight", result: "retry" });

  /** Processes `signal` while Redis is frozen, thawing it once the gateway has retried the sighting. */
  const processThroughStall = async (signal: Signal): Promise<ProcessResult> => {
    const before = await sightRetries();
    stack.redis.process.pause();
    let answer: Promise<ProcessResult>;
    try {
      answer = process(signal);
      await eventually(async () => (await sightRetries()) > before, {
        what: "the gateway to give up on the first answer and retry the sighting",
        timeoutMs: 5_000,
        intervalMs: 20,
      });
    } finally {
      stack.redis.process.resume();
    }
    return answer;
  };

  it("counts a duplicate once when its sighting ran in Redis but was retried", async () => {
    const signal = podAlert({ namespace: "tally" });
    expect((await process(signal)).status).toBe("created");

    const dup = await processThroughStall(signal);
    expect(dup).toMatchObject({ status: "duplicate", occurrenceCount: 2 });
    expect(await stack.client.hget(dedupKey(signal.fingerprint), "count")).toBe("2");
    await eventually(
      async () =>
        (await listRRs(stack.kube, "tally", signal.fingerprint))[0]?.status?.deduplication?.occurrenceCount === 2,
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
    expect(await stack.client.hget(dedupKey(member.fingerprint), "count")).toBe("2");

    // Three answers went to the storm (two first sightings and the repeat): its request counts three.
    const stormFp = stormFingerprint("tally-storm", "TallyOOM");
    await eventually(
      async () => (await listRRs(stack.kube, "tally-storm", stormFp))[0]?.status?.deduplication?.occurrenceCount === 3,
      { what: "the storm request to count its three signals", timeoutMs: 15_000 },
    );
  });

  it("folds a storm member into its window once when the storm check is run again", async () => {
    const link = new RedisLink(stack.config.redis, createMetrics(), testLog);
    try {
      const store = new RedisStormStore(link);
      const signal = podAlert({ name: "TallyRetry", namespace: "tally-storm" });
      // The dedup hash of a claimed first sighting (as the Lua check-and-claim leaves it).
      await stack.client.hset(dedupKey(signal.fingerprint), {
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
      expect(await stack.client.hget(windowKey(first?.windowId ?? ""), "count")).toBe("1");
      expect(await stack.client.hget(dedupKey(signal.fingerprint), "remediationRequestRef")).toBe(
        `storm:${first?.windowId}`,
      );
    } finally {
      await link.close();
    }
  });
});

/**
 * Degraded-mode counts meet an adoption: the request's status already holds them when the adopter
 * read it after they were written, and not when it read it before.
 */
describe("adding degraded-mode counts to a hash (ADD_COUNT)", () => {
  const stack = pipelineOnRealStack({});
  const ref = "tally/rr-adopted";
  const add = (key: string, delta: number, id: string, inStatus: number) =>
    ADD_COUNT.run(stack.client, [key], [ref, delta, id, inStatus]);

  it("waits for a claimer, skips what the adopted count holds, adds the rest once", async () => {
    const key = dedupKey("add-count-test");
    await stack.client.hset(key, { count: 1, remediationRequestRef: "", claim: "creator.1", tokens: " creator.1 " });
    expect(await add(key, 3, "debt.1", 4)).toBe("later");
    expect(await stack.client.hget(key, "count")).toBe("1");

    // The claimer adopts the request with the count its status held: 4, which includes debt.1.
    await RECORD.run(stack.client, [key], [ref, 4, "", 60_000]);
    expect(await stack.client.hget(key, "count")).toBe("5");
    expect(await add(key, 3, "debt.1", 4)).toBe("included");
    expect(await add(key, 2, "debt.2", 6)).toBe("added");
    expect(await add(key, 2, "debt.2", 6)).toBe("seen"); // a retry after a lost answer
    expect(await stack.client.hget(key, "count")).toBe("7");

    expect(await ADD_COUNT.run(stack.client, [key], ["tally/another", 1, "debt.3", 9])).toBe("gone");
    expect(await add(dedupKey("add-count-none"), 1, "debt.4", 2)).toBe("gone");
    expect(await stack.client.hget(key, "count")).toBe("7");
  });

  it("makes a missing hash from the status count, once its counts are all in status", async () => {
    const key = dedupKey("add-count-restore");
    const missing = (mode: string, delta: number, id: string, inStatus: number) =>
      ADD_COUNT.run(
        stack.client,
        [key],
        [ref, delta, id, inStatus, mode, "2026-01-01T10:00:00Z", "2026-01-01T10:05:00Z", 60_000],
      );
    expect(await missing("wait", 1, "debt.5", 1)).toBe("later");
    expect(await stack.client.exists(key)).toBe(0);
    expect(await missing("restore", 3, "debt.6", 4)).toBe("restored");
    expect(await stack.client.hgetall(key)).toMatchObject({
      remediationRequestRef: ref,
      count: "4",
      adoptedCount: "4",
      firstSeen: "2026-01-01T10:00:00Z",
      lastSeen: "2026-01-01T10:05:00Z",
      claim: "",
    });
    expect(await stack.client.pttl(key)).toBeGreaterThan(50_000);
    // The request's earlier count (its creation) is in the 4; a later one is added.
    expect(await missing("restore", 1, "debt.5", 1)).toBe("included");
    expect(await missing("restore", 2, "debt.7", 6)).toBe("added");
    expect(await missing("restore", 2, "debt.7", 6)).toBe("seen");
    expect(await stack.client.hget(key, "count")).toBe("6");
  });
});
