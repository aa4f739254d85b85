import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import type { ConfigTree } from "../src/components/gateway.js";
import { StartedRedisSentinelGroup } from "../src/components/redis-sentinel.js";
import type { ToxicProxy } from "../src/components/toxiproxy.js";
import { remediationRequests } from "../src/invariants.js";
import { eventually } from "../src/poll.js";
import { LocalStack, type ProxiedLink, type StartedLocalStack } from "../src/stack.js";

const NAMESPACE = "proxied";
let alertSeq = 0;

/** An Alertmanager webhook with one firing alert on a pod of its own. */
function webhook(pod = `api-${++alertSeq}`) {
  return {
    version: "4",
    groupKey: '{}:{alertname="ProxiedLinkCheck"}',
    truncatedAlerts: 0,
    status: "firing",
    receiver: "gateway",
    groupLabels: { alertname: "ProxiedLinkCheck" },
    commonLabels: {},
    commonAnnotations: {},
    externalURL: "http://alertmanager",
    alerts: [
      {
        status: "firing",
        labels: { alertname: "ProxiedLinkCheck", severity: "warning", namespace: NAMESPACE, pod },
        annotations: { summary: `check on ${pod}` },
        startsAt: "2026-11-26T10:00:00Z",
        endsAt: "0001-01-01T00:00:00Z",
        generatorURL: "http://prometheus/graph",
        fingerprint: pod,
      },
    ],
  };
}

interface Answer {
  status: number;
  body: { status?: string; fingerprint?: string; remediationRequestName?: string };
}

async function post(stack: StartedLocalStack, body = webhook()): Promise<Answer> {
  const res = await fetch(`${stack.ingressUrl()}/api/v1/signals/prometheus`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(15_000),
  });
  return { status: res.status, body: (await res.json()) as Answer["body"] };
}

/** Waits for the RemediationRequest a 201 named, in the API server itself. */
async function expectRemediationRequest(stack: StartedLocalStack, answer: Answer): Promise<void> {
  expect(answer.status, JSON.stringify(answer.body)).toBe(201);
  const name = answer.body.remediationRequestName;
  await eventually(
    async () =>
      (await remediationRequests(stack.kube)).some(
        (rr) => rr.metadata.name === name && rr.spec.signalFingerprint === answer.body.fingerprint,
      ),
    { what: `RemediationRequest ${name} in the API server` },
  );
}

async function redisAvailable(stack: StartedLocalStack): Promise<number> {
  return (await stack.gateway?.metrics())?.value("gateway_redis_available") ?? Number.NaN;
}

/**
 * Cuts one proxy and sends signals until the gateway reports Redis
 * unavailable (it notices on a failed operation), then restores the proxy
 * and waits for its background probe to report Redis back.
 */
async function cutRedisLink(stack: StartedLocalStack, proxy: ToxicProxy | undefined): Promise<number[]> {
  if (!proxy) throw new Error("no such proxy in stack.proxies");
  const during: number[] = [];
  await proxy.disable();
  try {
    await eventually(
      async () => {
        during.push((await post(stack)).status);
        return (await redisAvailable(stack)) === 0;
      },
      { what: "gateway_redis_available 0 with the Redis link cut", timeoutMs: 30_000 },
    );
  } finally {
    await proxy.enable();
  }
  await eventually(async () => (await redisAvailable(stack)) === 1, {
    what: "gateway_redis_available 1 with the Redis link back",
    timeoutMs: 30_000,
  });
  return during;
}

const stackOptions = (builder: LocalStack, links?: ProxiedLink[]) =>
  builder
    .withToxiproxy(links)
    .withNamespaces({ [NAMESPACE]: { environment: "staging" } })
    // Many alerts of one name in a minute would fold into a storm and create nothing.
    .withGatewayConfig({ processing: { storm: { enabled: false } } });

describe("LocalStack withToxiproxy (one Redis server)", () => {
  let stack: StartedLocalStack;

  beforeAll(async () => {
    stack = await stackOptions(new LocalStack()).start();
  }, 180_000);
  afterAll(async () => {
    await stack?.stop();
  }, 120_000);

  it("puts a proxy on every link; the gateway knows only the proxies", async () => {
    const names = stack.endpoints().toxiproxy?.proxies.map((p) => p.name);
    expect(names?.sort()).toEqual(["data-storage", "ingress", "kube-apiserver", "redis"]);
    const { proxies } = stack;
    expect(proxies.redisNodes).toEqual([]);
    expect(proxies.replication).toEqual([]);
    const config = stack.gateway?.getConfig() as Record<string, ConfigTree>;
    const kubeconfigPath = String(config.kubernetes?.kubeconfigPath);
    expect(kubeconfigPath).toBe(stack.endpoints().toxiproxy?.kubeconfig);
    const kubeconfig = parse(readFileSync(kubeconfigPath, "utf8"));
    expect(kubeconfig.clusters[0].cluster.server).toBe(`https://${proxies.kube?.getListen()}`);
    expect(new URL(String(config.redis?.url)).host).toBe(proxies.redis[0]?.getListen());
    expect(new URL(String(config.dataStorage?.url)).host).toBe(proxies.dataStorage?.getListen());
    expect(proxies.kube?.getUpstream()).toBe(new URL(stack.kube.getServerUrl()).host);
    expect(proxies.dataStorage?.getUpstream()).toBe(new URL(stack.dataStorage.getUrl()).host);
    expect(stack.ingressUrl()).toBe(`http://${proxies.ingress?.getListen()}`);
    expect(proxies.ingress?.getUpstream()).toBe(new URL(stack.gateway?.getUrl() ?? "").host);
  });

  it("a signal POSTed through the ingress proxy creates a RemediationRequest (TLS to the API server through its proxy) and is audited through the Data Storage proxy", async () => {
    const answer = await post(stack);
    await expectRemediationRequest(stack, answer);
    await eventually(
      async () =>
        (await stack.dataStorage.events()).some((e) => JSON.stringify(e).includes(answer.body.fingerprint ?? "-")),
      { what: `an audit event for ${answer.body.fingerprint} in Data Storage`, timeoutMs: 15_000 },
    );
  });

  it("disabling the Redis proxy makes the gateway report Redis unavailable; enabling it brings Redis back", async () => {
    expect(await redisAvailable(stack)).toBe(1);
    const during = await cutRedisLink(stack, stack.proxies.redis[0]);
    console.info(`[stack proxies] answers while the Redis proxy was disabled: ${during.join(", ")}`);
    // Degraded, not down: deduplication moves to the API server.
    for (const status of during) expect(status).toBe(201);
    await expectRemediationRequest(stack, await post(stack));
  });
});

/** A started Sentinel stack with proxies on `links` (default: every link), and its group. */
async function sentinelStack(
  links?: ProxiedLink[],
): Promise<{ stack: StartedLocalStack; group: StartedRedisSentinelGroup }> {
  const stack = await stackOptions(new LocalStack().withSentinel(), links).start();
  if (!(stack.redis instanceof StartedRedisSentinelGroup)) throw new Error("expected a Sentinel group");
  return { stack, group: stack.redis };
}

describe("LocalStack withToxiproxy withSentinel (replication proxies, natMap)", () => {
  let stack: StartedLocalStack;
  let group: StartedRedisSentinelGroup;

  beforeAll(async () => {
    ({ stack, group } = await sentinelStack());
  }, 180_000);
  afterAll(async () => {
    await stack?.stop();
  }, 120_000);

  it("the gateway asks the sentinels through their proxies and natMap sends it to each node through its own", () => {
    const { proxies } = stack;
    expect(proxies.redis.map((p) => p.getName())).toEqual(["redis-sentinel-0", "redis-sentinel-1", "redis-sentinel-2"]);
    expect(proxies.redisNodes.map((p) => p.getName())).toEqual([
      "gateway-redis-node-0",
      "gateway-redis-node-1",
      "gateway-redis-node-2",
    ]);
    expect(proxies.replication).toEqual(group.getNodeProxies());
    const redis = stack.gateway?.getConfig().redis as { sentinels: string[]; natMap: Record<string, string> };
    expect(redis.sentinels).toEqual(proxies.redis.map((p) => p.getListen()));
    const expected: Record<string, string> = {};
    group.getNodes().forEach((n, i) => {
      expected[`${n.host}:${n.port}`] = proxies.redisNodes[i]?.getListen() ?? "";
    });
    group.getSentinels().forEach((s, i) => {
      expected[`${s.host}:${s.port}`] = proxies.redis[i]?.getListen() ?? "";
    });
    expect(redis.natMap).toEqual(expected);
  });

  it("a 300 ms latency toxic on the master's node proxy makes the replicas lag behind the master's offset", async () => {
    const masterProxy = await group.getMasterProxy();
    expect(stack.proxies.replication).toContain(masterProxy);
    await masterProxy.addLatency({ latency: 300 });
    const writer = group.getServer(await group.getMaster()).client();
    try {
      await writer.set("lag:probe", "x".repeat(1000));
      const wroteAt = performance.now();
      const behind = await group.getReplicaLag();
      const caughtUpMs = await eventually(
        async () => ((await group.getReplicaLag()).every((l) => l.bytes === 0) ? performance.now() - wroteAt : false),
        { what: "the replicas to catch up", timeoutMs: 5000, intervalMs: 10 },
      );
      console.info(
        `[stack proxies] replica lag with 300 ms on the master's node proxy: ${behind.map((l) => l.bytes).join(", ")} bytes behind right after a write, caught up after ${caughtUpMs.toFixed(0)} ms`,
      );
      for (const { bytes } of behind) expect(bytes).toBeGreaterThan(1000);
      expect(caughtUpMs).toBeGreaterThanOrEqual(250);
    } finally {
      writer.disconnect();
      await masterProxy.removeToxic("latency_downstream");
    }
  });

  it("after killMaster() and waitForFailover() the gateway still answers, through natMap and the new master's proxy", async () => {
    await expectRemediationRequest(stack, await post(stack));
    await group.waitForReplicaSync();
    const killed = await group.killMaster();
    const killedAt = Date.now();
    const promoted = await group.waitForFailover(killed);
    const failoverMs = Date.now() - killedAt;

    const pod = "after-failover";
    const after = await post(stack, webhook(pod));
    await expectRemediationRequest(stack, after);
    await eventually(async () => (await redisAvailable(stack)) === 1, {
      what: "gateway_redis_available 1 after the failover",
      timeoutMs: 30_000,
    });
    // The gateway's Redis writes land on the new master...
    const direct = group.getServer(promoted).client();
    try {
      await eventually(
        async () => {
          await post(stack, webhook(pod)); // the same alert again: recorded in Redis once it is back
          return (await direct.exists(`gateway:dedup:fingerprint:${after.body.fingerprint}`)) === 1;
        },
        { what: "the gateway's dedup record of the alert on the new master", timeoutMs: 30_000 },
      );
    } finally {
      direct.disconnect();
    }
    // ...and reach it only through its gateway-side proxy: cut that, and Redis is gone for the gateway.
    const index = group.getNodes().findIndex((n) => n.port === promoted.port);
    const cutAt = Date.now();
    await cutRedisLink(stack, stack.proxies.redisNodes[index]);
    console.info(
      `[stack proxies] failover through the proxies ${failoverMs} ms; cutting and restoring the new master's gateway-side proxy took ${Date.now() - cutAt} ms`,
    );
  }, 120_000);
});

describe("LocalStack withToxiproxy(['replication']) withSentinel (only the links a run faults)", () => {
  let stack: StartedLocalStack;
  let group: StartedRedisSentinelGroup;

  beforeAll(async () => {
    ({ stack, group } = await sentinelStack(["replication"]));
  }, 180_000);
  afterAll(async () => {
    await stack?.stop();
  }, 120_000);

  it("proxies replication only; natMap sends the gateway past the nodes' announced proxies to the nodes themselves", () => {
    const names = stack.endpoints().toxiproxy?.proxies.map((p) => p.name);
    expect(names?.sort()).toEqual(["redis-node-0", "redis-node-1", "redis-node-2"]);
    expect(stack.proxies.replication).toEqual(group.getNodeProxies());
    expect(stack.proxies.redis).toEqual([]);
    expect(stack.proxies.redisNodes).toEqual([]);
    const config = stack.gateway?.getConfig() as Record<string, ConfigTree>;
    const redis = config.redis as { sentinels: string[]; natMap: Record<string, string> };
    expect(redis.sentinels).toEqual(group.getSentinelAddresses().split(","));
    const expected: Record<string, string> = {};
    group.getNodes().forEach((announced, i) => {
      expected[`${announced.host}:${announced.port}`] = `${group.nodes[i]?.getHost()}:${group.nodes[i]?.getPort()}`;
    });
    expect(redis.natMap).toEqual(expected);
    expect(String(config.kubernetes?.kubeconfigPath)).toBe(stack.kube.getKubeconfigPath());
    expect(String(config.dataStorage?.url)).toBe(stack.dataStorage.getUrl());
    expect(() => stack.ingressUrl()).toThrow("leave out 'ingress'");
  });

  it("a signal sent to the gateway itself creates a RemediationRequest, with a latency toxic on the master's replication proxy", async () => {
    const masterProxy = await group.getMasterProxy();
    await masterProxy.addLatency({ latency: 300 });
    try {
      const res = await fetch(`${stack.gateway?.getUrl()}/api/v1/signals/prometheus`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(webhook()),
        signal: AbortSignal.timeout(15_000),
      });
      await expectRemediationRequest(stack, { status: res.status, body: (await res.json()) as Answer["body"] });
    } finally {
      await masterProxy.removeToxic("latency_downstream");
    }
  });
});

describe("LocalStack.withToxiproxy(links)", () => {
  it.each([[[]], [["redis", "disk"]]])("refuses %j before anything starts", (links) => {
    expect(() => new LocalStack().withToxiproxy(links as never)).toThrow(
      "LocalStack.withToxiproxy(): links must be some of redis, replication, kube, dataStorage, ingress",
    );
  });
});
