import { setTimeout as pause } from "node:timers/promises";
import { Redis } from "ioredis";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { type Address, RedisSentinelGroup, type StartedRedisSentinelGroup } from "../src/components/redis-sentinel.js";
import { type StartedToxiproxyServer, ToxiproxyServer } from "../src/components/toxiproxy.js";
import { eventually } from "../src/poll.js";

const KEY = "failover:counter";

/**
 * INCRs KEY every 10 ms, one at a time, until told to stop, 3000 writes or
 * 30 s, whichever comes first. Records every reply and every error.
 */
function startWriter(client: Redis) {
  const seen = { acked: 0, lastReply: 0, errors: [] as string[], longestGapMs: 0 };
  let stopping = false;
  const deadline = Date.now() + 30_000;
  const done = (async () => {
    let lastAckAt = Date.now();
    for (let i = 0; i < 3000 && !stopping && Date.now() < deadline; i++) {
      try {
        seen.lastReply = await client.incr(KEY);
        seen.acked++;
        seen.longestGapMs = Math.max(seen.longestGapMs, Date.now() - lastAckAt);
        lastAckAt = Date.now();
      } catch (err) {
        seen.errors.push((err as Error).message);
      }
      await pause(10); // pacing of the load, not synchronization
    }
  })();
  return {
    seen,
    stop: async () => {
      stopping = true;
      await done;
      return seen;
    },
  };
}

describe("RedisSentinelGroup (real redis-server and redis-sentinel processes)", () => {
  const password = "pw";
  let group: StartedRedisSentinelGroup;
  let killed: Address | undefined;
  let promoted: Address | undefined;

  async function onNode<T>(node: Address, use: (client: Redis) => Promise<T>): Promise<T> {
    const client = new Redis({ ...node, password, maxRetriesPerRequest: 0, retryStrategy: () => null });
    try {
      return await use(client);
    } finally {
      client.disconnect();
    }
  }

  beforeAll(async () => {
    group = await new RedisSentinelGroup()
      .withReplicas(2)
      .withSentinels(3)
      .withPassword(password)
      .withMasterName("gwmaster")
      .withDownAfterMs(1500)
      .start();
  });
  afterAll(async () => {
    await group?.stop();
  });

  it("rejects a bad setting naming it", async () => {
    await expect(new RedisSentinelGroup().withSentinels(3).withQuorum(4).start()).rejects.toThrow(
      /quorum must be 1..3/,
    );
    await expect(new RedisSentinelGroup().withDownAfterMs(1000).start()).rejects.toThrow(
      /downAfterMs must be .* above 1000/,
    );
  });

  it("fails over to a former replica with zero client errors; the new master holds every write acknowledged after the failover, and none twice", async () => {
    expect(group.getSentinelAddresses().split(",")).toHaveLength(3);
    const before = await group.getMaster();
    const formerReplicas = group.getNodes().filter((n) => n.port !== before.port);
    const client = group.client();
    let connectionEvents = 0;
    client.on("error", () => connectionEvents++); // reconnect noise; commands must not fail
    const writer = startWriter(client);
    try {
      await eventually(() => writer.seen.acked >= 20, { what: "20 acknowledged writes before the kill" });
      killed = await group.killMaster();
      expect(killed).toEqual(before);
      const killedAt = Date.now();

      promoted = await group.waitForFailover(killed, { timeoutMs: 30_000 });
      const failoverMs = Date.now() - killedAt;
      expect(formerReplicas).toContainEqual(promoted);

      const ackedAtFailover = writer.seen.acked;
      await eventually(() => writer.seen.acked >= ackedAtFailover + 50, {
        what: "50 more acknowledged writes after the failover",
        timeoutMs: 20_000,
      });
      const seen = await writer.stop();
      const counter = Number(await onNode(promoted, (c) => c.get(KEY)));
      console.info(
        `[sentinel failover] failover ${failoverMs} ms, longest gap between acks ${seen.longestGapMs} ms, ` +
          `acknowledged ${seen.acked}, counter on new master ${counter}, ` +
          `acknowledged but lost (async replication) ${seen.acked - counter}, connection error events ${connectionEvents}`,
      );
      expect(seen.errors).toEqual([]);
      // Every write after the failover went to the new master: it holds exactly what the client last saw.
      expect(counter).toBe(seen.lastReply);
      // No write applied without an acknowledgement (e.g. twice by a resend).
      expect(counter).toBeLessThanOrEqual(seen.acked);
    } finally {
      await writer.stop();
      client.disconnect();
    }
  }, 90_000);

  it("the killed master, restarted, becomes a replica of the new master and resyncs its data", async () => {
    if (!killed || !promoted) throw new Error("needs the failover test to have run first");
    await group.restart(killed);
    await group.waitForReplicaSync({ timeoutMs: 60_000 });
    const info = await group.getReplicationInfo(killed);
    expect(info.role).toBe("slave");
    expect(Number(info.master_port)).toBe(promoted.port);
    const onPromoted = await onNode(promoted, (c) => c.get(KEY));
    expect(await onNode(killed, (c) => c.get(KEY))).toBe(onPromoted);
    expect(Number(onPromoted)).toBeGreaterThan(0);
  }, 90_000);

  it("after waitForReplicaSync the group survives a second master kill", async () => {
    if (!promoted) throw new Error("needs the failover test to have run first");
    const client = group.client();
    client.on("error", () => {}); // reconnect noise while the master is down
    try {
      const before = Number(await client.get(KEY));
      const secondKill = await group.killMaster();
      expect(secondKill).toEqual(promoted);
      const next = await group.waitForFailover(secondKill, { timeoutMs: 30_000 });
      expect(next.port).not.toBe(secondKill.port);
      expect(Number(await client.incr(KEY))).toBe(before + 1);
    } finally {
      client.disconnect();
    }
  }, 90_000);
});

describe("RedisSentinelGroup withReplicationProxy (every node behind a Toxiproxy proxy of its own)", () => {
  const password = "pw";
  let toxiproxy: StartedToxiproxyServer;
  let group: StartedRedisSentinelGroup;

  /** Writes to the master directly, then times how long until no replica is behind it. */
  async function measureCatchUp(key: string): Promise<{ behindBytes: number[]; catchUpMs: number }> {
    const writer = group.getServer(await group.getMaster()).client();
    try {
      await writer.set(key, "x".repeat(100));
      const wroteAt = performance.now();
      const behindBytes = (await group.getReplicaLag()).map((l) => l.bytes);
      const catchUpMs = await eventually(
        async () => ((await group.getReplicaLag()).every((l) => l.bytes === 0) ? performance.now() - wroteAt : false),
        { what: `every replica to process the write of ${key}`, timeoutMs: 5000, intervalMs: 10 },
      );
      return { behindBytes, catchUpMs };
    } finally {
      writer.disconnect();
    }
  }

  beforeAll(async () => {
    toxiproxy = await new ToxiproxyServer().start();
    group = await new RedisSentinelGroup().withPassword(password).withReplicationProxy(toxiproxy).start();
  });
  afterEach(async () => {
    await toxiproxy.reset();
  });
  afterAll(async () => {
    await group?.stop();
    await toxiproxy?.stop();
  });

  it("nodes announce their proxies: replicas replicate from the master's proxy and sentinels name proxies", async () => {
    const proxies = group.getNodeProxies();
    expect(proxies.map((p) => p.getName())).toEqual(["redis-node-0", "redis-node-1", "redis-node-2"]);
    expect(proxies.map((p) => p.getUpstream())).toEqual(group.nodes.map((n) => `127.0.0.1:${n.getPort()}`));
    expect(group.getNodes()).toEqual(proxies.map((p) => ({ host: "127.0.0.1", port: p.getListenPort() })));
    const master = await group.getMaster();
    expect(master).toEqual(group.getNodes()[0]);
    expect((await group.getMasterProxy()).getName()).toBe("redis-node-0");
    const masterInfo = await group.getReplicationInfo(master);
    for (const replica of group.getNodes().slice(1)) {
      const info = await group.getReplicationInfo(replica);
      expect(info).toMatchObject({ role: "slave", master_port: String(master.port), master_link_status: "up" });
    }
    // The master lists its replicas by the ports they announce; sentinels learn them from there.
    const announced = [masterInfo.slave0, masterInfo.slave1].map((s) => Number(/port=(\d+)/.exec(s ?? "")?.[1]));
    expect(announced.sort()).toEqual([proxies[1], proxies[2]].map((p) => p?.getListenPort()).sort());
  });

  it("a 300 ms latency toxic downstream of the master's proxy makes the replicas lag, then catch up", async () => {
    const unhindered = await measureCatchUp("lag:before");
    const masterProxy = await group.getMasterProxy();
    await masterProxy.addLatency({ latency: 300 });
    const lagged = await measureCatchUp("lag:during");
    console.info(
      `[replication proxy] catch-up after a write: ${unhindered.catchUpMs.toFixed(0)} ms without the toxic, ` +
        `${lagged.catchUpMs.toFixed(0)} ms with 300 ms latency; bytes behind right after the write: ${lagged.behindBytes.join(", ")}`,
    );
    expect(unhindered.catchUpMs).toBeLessThan(250);
    expect(lagged.behindBytes).toHaveLength(2);
    for (const bytes of lagged.behindBytes) expect(bytes).toBeGreaterThan(0);
    expect(lagged.catchUpMs).toBeGreaterThanOrEqual(250);
  });

  it("cut off by its proxy, the running master is failed over; back, it rejoins as a replica of the new master", async () => {
    const old = await group.getMaster();
    const oldProxy = group.getNodeProxy(old);
    await oldProxy.disable();
    const cutAt = Date.now();
    const promoted = await group.waitForFailover(old);
    const failoverMs = Date.now() - cutAt;
    expect(group.getServer(old).process.running).toBe(true);
    await oldProxy.enable();
    await group.waitForReplicaSync();
    const info = await group.getReplicationInfo(old);
    console.info(`[replication proxy] partition of the master: failover ${failoverMs} ms`);
    expect(info.role).toBe("slave");
    expect(Number(info.master_port)).toBe(group.getNodeProxy(promoted).getListenPort());
  }, 90_000);

  it("killMaster(), waitForFailover() and restart() through the proxies; the data survives", async () => {
    const client = group.client();
    client.on("error", () => {}); // reconnect noise while the master is down
    try {
      await client.set("proxied:key", "kept");
      await group.waitForReplicaSync();
      const killed = await group.killMaster();
      const killedAt = Date.now();
      const promoted = await group.waitForFailover(killed);
      const failoverMs = Date.now() - killedAt;
      expect(group.getNodes()).toContainEqual(promoted);
      expect(await client.get("proxied:key")).toBe("kept");

      await group.restart(killed);
      await group.waitForReplicaSync();
      const info = await group.getReplicationInfo(killed);
      console.info(`[replication proxy] master kill: failover ${failoverMs} ms`);
      expect(info.role).toBe("slave");
      expect(Number(info.master_port)).toBe(group.getNodeProxy(promoted).getListenPort());
      const direct = group.getServer(killed).client();
      expect(await direct.get("proxied:key")).toBe("kept");
      direct.disconnect();
    } finally {
      client.disconnect();
    }
  }, 120_000);
});
