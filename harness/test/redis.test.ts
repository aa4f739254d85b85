import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RedisServer, type StartedRedisServer } from "../src/components/redis.js";

describe("RedisServer (real redis-server)", () => {
  let redis: StartedRedisServer;
  beforeAll(async () => {
    redis = await new RedisServer().withPassword("pw").start();
  });
  afterAll(async () => {
    await redis?.stop();
  });

  it("accepts authenticated writes and rejects a wrong password", async () => {
    const client = redis.client();
    await client.set("k", "v");
    expect(await client.get("k")).toBe("v");
    client.disconnect();
    const { Redis } = await import("ioredis");
    const bad = new Redis({
      port: redis.getPort(),
      password: "wrong",
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
    });
    bad.on("error", () => {});
    await expect(bad.get("k")).rejects.toThrow(/WRONGPASS|invalid|closed/i);
    bad.disconnect();
  });

  it("comes back on the same port after a crash", async () => {
    await redis.kill();
    expect(redis.process.running).toBe(false);
    await redis.start();
    const client = redis.client();
    expect(await client.ping()).toBe("PONG");
    client.disconnect();
  });
});
