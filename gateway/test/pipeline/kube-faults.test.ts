import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
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
import { ProblemError } from "../../src/types.js";
import { listRRs, metricValue, podAlert, type RunningPipeline, startKube, startPipeline, testConfig } from "./stack.js";

describe("Kubernetes API behind Toxiproxy: slow answers", () => {
  let redis: StartedRedisServer;
  let kube: StartedKubeApiServer;
  let toxiproxy: StartedToxiproxyServer;
  let proxy: ToxicProxy;
  let run: RunningPipeline;

  beforeAll(async () => {
    [redis, kube, toxiproxy] = await Promise.all([
      new RedisServer().start(),
      startKube({ slow: {} }),
      new ToxiproxyServer().start(),
    ]);
    proxy = await toxiproxy.createProxy("kube-api", new URL(kube.getServerUrl()).host);
    // The gateway's kubeconfig points at the proxy (the serving certificate is for 127.0.0.1, any port).
    const kc = kube.kubeConfig();
    const config = JSON.parse(kc.exportConfig()) as { clusters: { cluster: { server: string } }[] };
    for (const c of config.clusters) c.cluster.server = `https://${proxy.getListen()}`;
    const kubeconfigPath = join(mkdtempSync(join(tmpdir(), "gw-kubeconfig-")), "kubeconfig");
    writeFileSync(kubeconfigPath, JSON.stringify(config));
    run = await startPipeline(
      testConfig({
        redis: { url: redis.getConnectionUrl() },
        kubernetes: { kubeconfigPath, requestTimeout: "500ms" },
        processing: { retry: { maxAttempts: 3, initialBackoff: "100ms", maxBackoff: "5s" } },
        dataStorage: { url: `http://127.0.0.1:${await freePort()}` },
      }),
    );
  });

  afterAll(async () => {
    await run?.pipeline.close();
    await Promise.all([redis?.stop(), kube?.stop(), toxiproxy?.stop()]);
  });

  it("answers 504 after bounded retries when every call times out, then creates exactly one request once the API is fast again", async () => {
    const signal = podAlert({ namespace: "slow" });
    await proxy.addLatency({ latency: 2_000 });
    const started = Date.now();
    const failure = await run.pipeline.process(signal, { requestId: "slow-1" }).catch((err: unknown) => err);
    const elapsed = Date.now() - started;
    expect(failure).toBeInstanceOf(ProblemError);
    expect(failure).toMatchObject({ status: 504 });
    // 3 attempts x 500 ms + 100 + 200 ms backoff per call, a few calls: bounded, never a hang.
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
    // A create that reached the server before its answer timed out is adopted, not repeated (D1).
    expect(await listRRs(kube, "slow", signal.fingerprint)).toHaveLength(1);
  });
});
