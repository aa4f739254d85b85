import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { StartedKubeApiServer } from "../../../harness/src/components/kube-api.js";
import { RedisSentinelGroup, type StartedRedisSentinelGroup } from "../../../harness/src/components/redis-sentinel.js";
import { eventually } from "../../../harness/src/poll.js";
import { freePort } from "../../../harness/src/ports.js";
import { ProblemError, type Signal } from "../../src/types.js";
import { listRRs, podAlert, type RunningPipeline, startKube, startPipeline, testConfig } from "./stack.js";

interface Tally {
  answered2xx: number;
  answered503: number;
}

describe("pipeline through a Redis Sentinel failover under traffic", () => {
  let group: StartedRedisSentinelGroup;
  let kube: StartedKubeApiServer;
  let run: RunningPipeline;

  beforeAll(async () => {
    [group, kube] = await Promise.all([
      new RedisSentinelGroup().withReplicas(2).withSentinels(3).start(),
      startKube({ failover: {} }),
    ]);
    run = await startPipeline(
      testConfig({
        redis: {
          mode: "sentinel",
          sentinels: group.getSentinels().map((s) => `${s.host}:${s.port}`),
          masterName: group.getMasterName(),
        },
        kubernetes: { kubeconfigPath: kube.getKubeconfigPath() },
        dataStorage: { url: `http://127.0.0.1:${await freePort()}` },
        processing: { storm: { enabled: false } },
      }),
    );
  });

  afterAll(async () => {
    await run?.pipeline.close();
    await Promise.all([group?.stop(), kube?.stop()]);
  });

  it("keeps D1 (one request per fingerprint) and D2 (every 2xx counted) when the master is killed", async () => {
    // A rotating pool of alerts; every 10th request adds a new one, so first sightings happen during the failover too.
    const pool = Array.from({ length: 20 }, (_, i) => podAlert({ namespace: "failover", pod: `api-${i}` }));
    const tally = new Map<string, Tally & { signal: Signal }>();
    const unexpected: unknown[] = [];
    let slowest = 0;
    let stop = false;
    const answered = () => [...tally.values()].reduce((n, t) => n + t.answered2xx, 0);

    const worker = async (offset: number) => {
      // Paced (about 150 signals/s per worker) and bounded in count; the stop flag ends it sooner.
      for (let i = offset; !stop && i < offset + 10_000; i++) {
        await sleep(5);
        if (i % 10 === 0) pool.push(podAlert({ namespace: "failover", pod: `new-${offset}-${i}` }));
        const signal = pool[i % pool.length] as Signal;
        const entry = tally.get(signal.fingerprint) ?? { signal, answered2xx: 0, answered503: 0 };
        tally.set(signal.fingerprint, entry);
        const started = Date.now();
        try {
          await run.pipeline.process(signal, { requestId: `w${offset}-${i}` });
          entry.answered2xx++;
        } catch (err) {
          if (err instanceof ProblemError && err.status === 503 && err.retryAfter) entry.answered503++;
          else unexpected.push(err);
        }
        slowest = Math.max(slowest, Date.now() - started);
      }
    };
    const traffic = Promise.all([0, 5, 10, 15].map(worker));
    try {
      await eventually(() => answered() >= 100, { what: "steady traffic before the kill" });
      const old = await group.killMaster();
      await group.waitForFailover(old);
      const after = answered();
      await eventually(() => answered() > after + 200, {
        what: "traffic answered after the failover",
        timeoutMs: 20_000,
      });
    } finally {
      stop = true;
      await traffic;
    }

    expect(unexpected).toEqual([]);
    expect(slowest).toBeLessThan(10_000);
    await eventually(() => run.pipeline.health().redis, {
      what: "Redis usable again via the new master",
      timeoutMs: 15_000,
    });
    await eventually(
      async () => {
        const rrs = await listRRs(kube, "failover");
        for (const { signal, answered2xx } of tally.values()) {
          const mine = rrs.filter((rr) => rr.spec.signalFingerprint === signal.fingerprint);
          if (answered2xx > 0 && mine.length !== 1)
            throw new Error(`D1: ${mine.length} requests for ${signal.resource.name}`);
          const counted = mine[0]?.status?.deduplication?.occurrenceCount ?? 0;
          if (counted < answered2xx)
            throw new Error(`D2: ${signal.resource.name} answered 2xx ${answered2xx}x, counted ${counted}`);
        }
        return true;
      },
      { what: `D1 and D2 for all ${tally.size} fingerprints`, timeoutMs: 15_000 },
    );
  });
});
