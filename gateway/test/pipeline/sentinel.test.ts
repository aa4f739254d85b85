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
    const signals = Array.from({ length: 20 }, (_, i) => podAlert({ namespace: "failover", pod: `api-${i}` }));
    const tally = new Map<string, Tally>(signals.map((s) => [s.fingerprint, { answered2xx: 0, answered503: 0 }]));
    const unexpected: unknown[] = [];
    let slowest = 0;
    let stop = false;

    const worker = async (offset: number) => {
      // Paced (about 150 signals/s per worker) and bounded in count; the stop flag ends it sooner.
      for (let i = offset; !stop && i < offset + 10_000; i++) {
        await sleep(5);
        const signal = signals[i % signals.length] as Signal;
        const entry = tally.get(signal.fingerprint) as Tally;
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
      await eventually(() => [...tally.values()].every((t) => t.answered2xx >= 3), {
        what: "steady traffic before the kill",
      });
      const old = await group.killMaster();
      await group.waitForFailover(old);
      const after = [...tally.values()].reduce((n, t) => n + t.answered2xx, 0);
      await eventually(() => [...tally.values()].reduce((n, t) => n + t.answered2xx, 0) > after + 200, {
        what: "traffic answered after the failover",
        timeoutMs: 20_000,
      });
    } finally {
      stop = true;
      await traffic;
    }

    expect(unexpected).toEqual([]);
    expect(slowest).toBeLessThan(10_000);
    for (const signal of signals) {
      const { answered2xx } = tally.get(signal.fingerprint) as Tally;
      await eventually(
        async () => {
          const rrs = await listRRs(kube, "failover", signal.fingerprint);
          if (rrs.length !== 1) throw new Error(`D1: ${rrs.length} RemediationRequests for ${signal.resource.name}`);
          const counted = rrs[0]?.status?.deduplication?.occurrenceCount ?? 0;
          if (counted < answered2xx) throw new Error(`D2: ${answered2xx} answered 2xx, ${counted} counted`);
          return true;
        },
        { what: `D1 and D2 for ${signal.resource.name}`, timeoutMs: 10_000 },
      );
    }
  });
});
