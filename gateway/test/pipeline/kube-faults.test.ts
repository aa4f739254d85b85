import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { StartedKubeApiServer } from "../../../harness/src/components/kube-api.js";
import { RedisServer, type StartedRedisServer } from "../../../harness/src/components/redis.js";
import {
  type StartedToxiproxyServer,
  type ToxicProxy,
  ToxiproxyServer,
} from "../../../harness/src/components/toxiproxy.js";
import { eventually } from "../../../harness/src/poll.js";
import { freePort } from "../../../harness/src/ports.js";
import { dedupKey } from "../../src/dedup.js";
import { ProblemError } from "../../src/types.js";
import { listRRs, metricValue, podAlert, type RunningPipeline, startKube, startPipeline, testConfig } from "./stack.js";

describe("Kubernetes API behind Toxiproxy: slow answers", () => {
  let redis: StartedRedisServer;
  let kube: StartedKubeApiServer;
  let toxiproxy: StartedToxiproxyServer;
  let proxy: ToxicProxy;
  let run: RunningPipeline;

  beforeAll(async () => {
    ({
      redis,
      kube,
      toxiproxy,
      kubeLink: proxy,
      run,
    } = await startLinks({ slow: {} }, false, {
      kubernetes: { requestTimeout: "800ms" },
      processing: { retry: { maxAttempts: 3, initialBackoff: "100ms", maxBackoff: "5s" } },
    }));
  });

  afterAll(() => stopLinks(run, redis, kube, toxiproxy));

  it("answers 504 after bounded retries when every call times out, then creates exactly one request once the API is fast again", async () => {
    const signal = podAlert({ namespace: "slow" });
    await proxy.addLatency({ latency: 2_000 });
    const started = Date.now();
    const failure = await run.pipeline.process(signal, { requestId: "slow-1" }).catch((err: unknown) => err);
    const elapsed = Date.now() - started;
    expect(failure).toBeInstanceOf(ProblemError);
    expect(failure).toMatchObject({ status: 504 });
    // 3 attempts x 800 ms + 100 + 200 ms backoff per call, a few calls: bounded, never a hang.
    expect(elapsed).toBeLessThan(10_000);
    expect(
      await metricValue(run.metrics, "gateway_crd_creation_failures_total", { reason: "timeout" }),
    ).toBeGreaterThanOrEqual(1);

    await toxiproxy.reset();
    const result = await eventually(
      async () => {
        const r = await run.pipeline.process(signal, { requestId: "slow-2" });
        return ["created", "duplicate"].includes(r.status) && r;
      },
      { what: "the signal accepted once the API server answers in time", timeoutMs: 15_000 },
    );
    expect(result.remediationRequestNamespace).toBe("slow");
    // A create that reached the server before its answer timed out is not repeated (D1).
    expect(await listRRs(kube, "slow", signal.fingerprint)).toHaveLength(1);
  });
});

describe("Redis lost in the middle of a creation", () => {
  let redis: StartedRedisServer;
  let kube: StartedKubeApiServer;
  let toxiproxy: StartedToxiproxyServer;
  let redisLink: ToxicProxy;
  let kubeLink: ToxicProxy;
  let run: RunningPipeline;
  let direct: Redis;

  beforeAll(async () => {
    let link: ToxicProxy | undefined;
    ({
      redis,
      kube,
      toxiproxy,
      kubeLink,
      redisLink: link,
      run,
    } = await startLinks({ outage: {} }, true, {
      kubernetes: { requestTimeout: "5s" },
    }));
    redisLink = link as ToxicProxy;
    direct = new Redis(redis.getConnectionUrl());
  });

  afterAll(async () => {
    direct?.disconnect();
    await stopLinks(run, redis, kube, toxiproxy);
  });

  it("records the request once Redis is back: the next sighting is a duplicate, not held for the claim's lease", async () => {
    const signal = podAlert({ namespace: "outage" });
    const key = dedupKey(signal.fingerprint);
    await kubeLink.addLatency({ latency: 1_500 }); // the creation takes a while: time to cut Redis under it
    const first = run.pipeline.process(signal, { requestId: "outage-1" });
    await eventually(async () => (await direct.hget(key, "claim")) || false, { what: "the creator's claim in Redis" });
    await redisLink.disable();
    expect(await first).toMatchObject({ status: "created" });
    expect(await metricValue(run.metrics, "gateway_redis_available")).toBe(0);
    expect(await direct.hget(key, "remediationRequestRef")).toBe(""); // the record did not reach Redis

    await toxiproxy.reset();
    await eventually(async () => (await metricValue(run.metrics, "gateway_redis_available")) === 1, {
      what: "gateway_redis_available back to 1",
    });
    const [rr] = await listRRs(kube, "outage", signal.fingerprint);
    expect(await direct.hget(key, "remediationRequestRef")).toBe(`outage/${rr?.metadata.name}`);
    expect(await direct.hget(key, "claim")).toBe("");
    const again = await run.pipeline.process(signal, { requestId: "outage-2" });
    expect(again).toMatchObject({ status: "duplicate", remediationRequestName: rr?.metadata.name, occurrenceCount: 2 });
  });
});

/**
 * Redis, an API server with `namespaces`, and a pipeline that reaches the API server (and, with
 * `proxyRedis`, Redis) through Toxiproxy, with the given Kubernetes and processing settings.
 */
async function startLinks(
  namespaces: Parameters<typeof startKube>[0],
  proxyRedis: boolean,
  settings: { kubernetes: Record<string, unknown>; processing?: Record<string, unknown> },
) {
  const [redis, kube, toxiproxy] = await Promise.all([
    new RedisServer().start(),
    startKube(namespaces),
    new ToxiproxyServer().start(),
  ]);
  const kubeLink = await toxiproxy.createProxy("kube-api", new URL(kube.getServerUrl()).host);
  const redisLink = proxyRedis
    ? await toxiproxy.createProxy("redis", `${redis.getHost()}:${redis.getPort()}`)
    : undefined;
  const base = testConfig({
    redis: { url: redisLink ? `redis://${redisLink.getListen()}` : redis.getConnectionUrl() },
    kubernetes: { kubeconfigPath: kubeconfigVia(kube, kubeLink), ...settings.kubernetes },
    dataStorage: { url: `http://127.0.0.1:${await freePort()}` },
    ...(settings.processing ? { processing: settings.processing } : {}),
  });
  return { redis, kube, toxiproxy, kubeLink, redisLink, run: await startPipeline(base) };
}

async function stopLinks(
  run: RunningPipeline | undefined,
  ...components: ({ stop(): Promise<unknown> } | undefined)[]
): Promise<void> {
  await run?.pipeline.close();
  await Promise.all(components.map((c) => c?.stop()));
}

/** A copy of the API server's kubeconfig that reaches it through `proxy` (its certificate is for 127.0.0.1, any port). */
function kubeconfigVia(kube: StartedKubeApiServer, proxy: ToxicProxy): string {
  const config = JSON.parse(kube.kubeConfig().exportConfig()) as { clusters: { cluster: { server: string } }[] };
  for (const c of config.clusters) c.cluster.server = `https://${proxy.getListen()}`;
  const path = join(mkdtempSync(join(tmpdir(), "gw-kubeconfig-")), "kubeconfig");
  writeFileSync(path, JSON.stringify(config));
  return path;
}
