import { Redis } from "ioredis";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { RedisServer, type StartedRedisServer } from "../src/components/redis.js";
import { type StartedToxiproxyServer, type ToxicProxy, ToxiproxyServer } from "../src/components/toxiproxy.js";
import { eventually } from "../src/poll.js";

/** A client that fails at once instead of reconnecting, so a fault shows up as an error. */
function fragileClient(port: number): { client: Redis; errors: NodeJS.ErrnoException[] } {
  const errors: NodeJS.ErrnoException[] = [];
  const client = new Redis({ port, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 2000 });
  client.on("error", (err) => errors.push(err));
  return { client, errors };
}

async function medianPingMs(client: Redis, samples = 7): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < samples; i++) {
    const start = performance.now();
    await client.ping();
    times.push(performance.now() - start);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(samples / 2)] ?? Number.NaN;
}

describe("ToxiproxyServer (real toxiproxy-server in front of a real redis-server)", () => {
  let redis: StartedRedisServer;
  let toxiproxy: StartedToxiproxyServer;
  let proxy: ToxicProxy;

  beforeAll(async () => {
    [redis, toxiproxy] = await Promise.all([new RedisServer().start(), new ToxiproxyServer().start()]);
    proxy = await toxiproxy.createProxy("redis", `127.0.0.1:${redis.getPort()}`);
  });
  afterEach(async () => {
    await toxiproxy.reset(); // each test starts from a clean proxy, even after a failure
  });
  afterAll(async () => {
    await Promise.all([toxiproxy?.stop(), redis?.stop()]);
  });

  it("a 200 ms latency toxic adds about 200 ms to a PING, and reset() takes it away", async () => {
    const direct = redis.client();
    const { client: proxied } = fragileClient(proxy.getListenPort());
    try {
      expect(await proxied.ping()).toBe("PONG");
      await proxy.addLatency({ latency: 200 });
      const added = (await medianPingMs(proxied)) - (await medianPingMs(direct));
      expect(added).toBeGreaterThanOrEqual(180);

      await toxiproxy.reset();
      expect(await medianPingMs(proxied)).toBeLessThan(100);
    } finally {
      direct.disconnect();
      proxied.disconnect();
    }
  });

  it("reset_peer closes an open connection and resets a new one (the client sees ECONNRESET)", async () => {
    const open = fragileClient(proxy.getListenPort());
    try {
      expect(await open.client.ping()).toBe("PONG");
      await proxy.addResetPeer({ timeout: 0 });
      await expect(open.client.ping()).rejects.toThrow(/closed/);

      const fresh = fragileClient(proxy.getListenPort());
      await expect(fresh.client.ping()).rejects.toThrow();
      expect(fresh.errors.map((e) => e.code)).toContain("ECONNRESET");
      fresh.client.disconnect();
    } finally {
      open.client.disconnect();
    }
  });

  it("disable() refuses connections and enable() lets them through again", async () => {
    await proxy.disable();
    const refused = fragileClient(proxy.getListenPort());
    await expect(refused.client.ping()).rejects.toThrow();
    expect(refused.errors.map((e) => e.code)).toContain("ECONNREFUSED");
    refused.client.disconnect();

    await proxy.enable();
    const { client } = fragileClient(proxy.getListenPort());
    expect(await client.ping()).toBe("PONG");
    client.disconnect();
  });

  it("limit_data closes the connection mid-reply; slicer delivers the same bytes in small pieces", async () => {
    const value = "x".repeat(2000);
    const direct = redis.client();
    await direct.set("big", value);
    direct.disconnect();

    const limited = fragileClient(proxy.getListenPort());
    expect(await limited.client.ping()).toBe("PONG");
    await proxy.addLimitData({ bytes: 500 });
    await expect(limited.client.get("big")).rejects.toThrow(/closed/);
    limited.client.disconnect();
    await toxiproxy.reset();

    await proxy.addSlicer({ average_size: 16, size_variation: 8, delay: 100 });
    const sliced = fragileClient(proxy.getListenPort());
    expect(await sliced.client.get("big")).toBe(value);
    sliced.client.disconnect();
  });

  it("a latency toxic reaches an open connection at once; dropConnections() closes it and the reconnect runs through the toxic", async () => {
    const direct = redis.client();
    const open = fragileClient(proxy.getListenPort());
    // Reconnects at once, like the gateway's client.
    const reconnecting = new Redis({ port: proxy.getListenPort(), retryStrategy: () => 10 });
    reconnecting.on("error", () => {}); // the refused reconnects while the proxy is down
    let reconnects = 0;
    reconnecting.on("reconnecting", () => reconnects++);
    try {
      expect(await open.client.ping()).toBe("PONG");
      expect(await reconnecting.ping()).toBe("PONG");
      const baseline = await medianPingMs(direct, 3);
      await proxy.addLatency({ latency: 300 });
      const openAdded = (await medianPingMs(open.client, 3)) - baseline;

      await proxy.dropConnections();
      await eventually(() => open.client.status === "end", { what: "the open connection to be closed" });
      await expect(open.client.ping()).rejects.toThrow(/closed/);
      const reconnectedAdded = (await medianPingMs(reconnecting, 3)) - baseline;
      console.info(
        `[dropConnections] latency 300 ms: added ${openAdded.toFixed(0)} ms on the open connection, ` +
          `${reconnectedAdded.toFixed(0)} ms after the reconnect`,
      );
      expect(openAdded).toBeGreaterThanOrEqual(280);
      expect(reconnectedAdded).toBeGreaterThanOrEqual(280);
      expect(reconnects).toBeGreaterThanOrEqual(1);
      // Left enabled: new connections go through.
      const fresh = fragileClient(proxy.getListenPort());
      expect(await fresh.client.ping()).toBe("PONG");
      fresh.client.disconnect();
    } finally {
      direct.disconnect();
      open.client.disconnect();
      reconnecting.disconnect();
    }
  });

  it("removeToxic() removes one named toxic", async () => {
    await proxy.addTimeout({ timeout: 0, name: "blackhole" });
    await proxy.removeToxic("blackhole");
    const { client } = fragileClient(proxy.getListenPort());
    expect(await client.ping()).toBe("PONG");
    client.disconnect();
  });

  it("rejects bad input with an error naming the field", async () => {
    await expect(toxiproxy.createProxy("bad", "no-port")).rejects.toThrow(/upstream must be "host:port"/);
    await expect(toxiproxy.createProxy("redis", `127.0.0.1:${redis.getPort()}`)).rejects.toThrow(
      /creating proxy "redis".*409/,
    );
    await expect(proxy.addLatency({ latency: -1 })).rejects.toThrow(/latency must be a non-negative integer/);
    await expect(proxy.addBandwidth({ rate: 10, toxicity: 2 })).rejects.toThrow(/toxicity must be between 0 and 1/);
    await expect(proxy.removeToxic("missing")).rejects.toThrow(/removing toxic "missing".*404/);
  });
});
