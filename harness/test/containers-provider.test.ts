import { request } from "node:http";
import { Redis } from "ioredis";
import { describe, expect, it } from "vitest";
import { dockerAvailable, localProvider, type Provider, provider } from "../src/providers/index.js";

const SKIP_REASON = "skipped: no Docker engine on this machine (HARNESS_PROVIDER=containers needs one)";

/** Independent of testcontainers: does a Docker engine answer GET /_ping where DOCKER_HOST (or the default socket) says? */
function engineAnswersPing(): Promise<boolean> {
  const dockerHost = process.env.DOCKER_HOST ?? "unix:///var/run/docker.sock";
  const target = dockerHost.startsWith("tcp://")
    ? { host: new URL(dockerHost).hostname, port: Number(new URL(dockerHost).port) }
    : { socketPath: dockerHost.replace(/^unix:\/\//, "") };
  return new Promise((resolve) => {
    const req = request({ ...target, path: "/_ping", timeout: 2000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on("error", () => resolve(false));
    req.on("timeout", () => {
      req.destroy();
      resolve(false);
    });
    req.end();
  });
}

/** What a suite does with a provider: Redis behind a Toxiproxy proxy, a fault, and recovery. */
async function redisBehindToxiproxy(chosen: Provider): Promise<void> {
  const redis = await chosen.redis({ password: "pw" });
  const toxiproxy = await chosen.toxiproxy();
  try {
    const proxy = await toxiproxy.createProxy("redis", `${redis.getHost()}:${redis.getPort()}`);
    const through = () =>
      new Redis({
        host: proxy.getListenHost(),
        port: proxy.getListenPort(),
        password: redis.getPassword(),
        maxRetriesPerRequest: 0,
        retryStrategy: () => null,
      }).on("error", () => {});
    const client = through();
    await client.set("k", "v");
    const direct = redis.client();
    expect(await direct.get("k")).toBe("v");
    direct.disconnect();
    client.disconnect();

    await proxy.disable();
    const refused = through();
    await expect(refused.ping()).rejects.toThrow();
    refused.disconnect();

    await toxiproxy.reset();
    const again = through();
    expect(await again.get("k")).toBe("v");
    again.disconnect();
  } finally {
    await Promise.all([toxiproxy.stop(), redis.stop()]);
  }
}

const docker = await dockerAvailable();

describe("provider selection (always runs)", () => {
  it("dockerAvailable() answers within 5 s and agrees with a direct ping of the Docker engine", async () => {
    const start = Date.now();
    const available = await dockerAvailable();
    expect(Date.now() - start).toBeLessThan(5000);
    expect(available).toBe(await engineAnswersPing());
    if (!available) console.info(`[containers provider] ${SKIP_REASON}`);
  });

  it("HARNESS_PROVIDER picks local by default, refuses an unknown value, and containers only with Docker", async () => {
    expect((await provider("local")).name).toBe("local");
    await expect(provider("podman")).rejects.toThrow(/HARNESS_PROVIDER must be "local" or "containers", got "podman"/);
    if (docker) expect((await provider("containers")).name).toBe("containers");
    else await expect(provider("containers")).rejects.toThrow(/needs a Docker engine/);
  });

  it("the local provider serves Redis behind Toxiproxy through the shared interfaces", async () => {
    await redisBehindToxiproxy(localProvider);
  });
});

describe.skipIf(!docker)(
  docker ? "containers provider (Docker engine found)" : `containers provider: ${SKIP_REASON}`,
  () => {
    it("serves Redis behind Toxiproxy through the same interfaces", async () => {
      await redisBehindToxiproxy(await provider("containers"));
    }, 300_000);
  },
);
