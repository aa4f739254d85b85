import { setTimeout as pause } from "node:timers/promises";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Address, RedisSentinelGroup, type StartedRedisSentinelGroup } from "../src/components/redis-sentinel.js";
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
