// Each fault kind, implemented once: inject() puts it in place and returns how to take it away.
// The runner registers every removal with the supervisor's cleanup list, so a fault is removed
// also when the run throws or is interrupted.

import { StartedRedisSentinelGroup } from "../../harness/src/components/redis-sentinel.js";
import type { ToxicProxy } from "../../harness/src/components/toxiproxy.js";
import { CpuCgroup } from "../../harness/src/host/cgroup.js";
import type { StartedLocalStack } from "../../harness/src/stack.js";
import { corruptedBodies } from "./corrupt.js";
import type { FaultAction, Link } from "./experiment.js";
import type { BackgroundLoad } from "./load.js";

export interface FaultContext {
  stack: StartedLocalStack;
  /** The background load, for faults that send beside it. */
  load?: BackgroundLoad;
  /** Progress and notes for the report. */
  note(line: string): void;
}

export interface InjectedFault {
  /** Takes the fault away; safe to call once. */
  remove(): Promise<void>;
  /** When the fault took effect, if before inject() returned (a kill preceded by a cut). */
  startedAt?: number;
  /** Figures the fault itself measured (e.g. the cgroup's OOM kills), read after removal. */
  figures?(): Record<string, number | string>;
}

/** The proxies a link runs through (a Sentinel group has one per node). */
export function linkProxies(stack: StartedLocalStack, link: Link): ToxicProxy[] {
  const p = stack.proxies;
  if (!p) throw new Error("the stack runs without Toxiproxy: start it with withToxiproxy()");
  const proxies = (() => {
    switch (link) {
      case "redis":
        return stack.redis instanceof StartedRedisSentinelGroup ? p.redisNodes : p.redis;
      case "replication":
        if (!(stack.redis instanceof StartedRedisSentinelGroup))
          throw new Error("link 'replication' needs a Sentinel stack");
        return p.replication;
      case "kube":
        return p.kube ? [p.kube] : [];
      case "dataStorage":
        return p.dataStorage ? [p.dataStorage] : [];
      case "ingress":
        return p.ingress ? [p.ingress] : [];
    }
  })();
  if (proxies.length === 0) throw new Error(`link '${link}' has no proxy: the experiment's stack.links leave it out`);
  return proxies;
}

function sentinel(stack: StartedLocalStack): StartedRedisSentinelGroup {
  if (!(stack.redis instanceof StartedRedisSentinelGroup)) throw new Error("this fault needs a Sentinel stack");
  return stack.redis;
}

function gatewayPid(stack: StartedLocalStack): number {
  const pid = stack.gateway?.process.pid;
  if (!pid || !stack.gateway?.process.running) throw new Error("the gateway is not running");
  return pid;
}

let toxicSeq = 0;
/** cgroup names must be unique within a run: a repeated fault gets a new one. */
let cgroupSeq = 0;

export async function inject(action: FaultAction, ctx: FaultContext): Promise<InjectedFault> {
  const { stack } = ctx;
  switch (action.kind) {
    case "toxic": {
      const proxies = linkProxies(stack, action.link);
      const name = `chaos_${action.toxic.type}_${++toxicSeq}`;
      const added: ToxicProxy[] = [];
      try {
        for (const proxy of proxies) {
          await addToxic(proxy, name, action.toxic.type, action.toxic.attributes, action.toxic.stream);
          added.push(proxy);
        }
        // Toxiproxy rolls a toxic's toxicity once per connection, and clients that must reconnect
        // (ask Sentinel again, redo a TLS handshake) only do so when their connection drops.
        if (action.reachOpenConnections) for (const proxy of proxies) await proxy.dropConnections();
      } catch (err) {
        await Promise.allSettled(added.map((p) => p.removeToxic(name)));
        throw err;
      }
      return { remove: async () => void (await Promise.all(proxies.map((p) => p.removeToxic(name)))) };
    }
    case "kill-redis-master": {
      const group = sentinel(stack);
      if (action.waitForResync) await group.waitForReplicaSync();
      const cut = action.replicasMissMs
        ? { proxy: await group.getMasterProxy(), name: `chaos_replicas_miss_${++toxicSeq}` }
        : undefined;
      let killed: Awaited<ReturnType<typeof group.killMaster>>;
      const startedAt = Date.now();
      try {
        if (cut) {
          // Data dropped (a timeout toxic of 0 ms never closes, it discards), not held as latency holds it.
          await cut.proxy.addTimeout({ name: cut.name, timeout: 0, stream: "downstream" });
          await new Promise((r) => setTimeout(r, action.replicasMissMs));
        }
        killed = await group.killMaster();
      } finally {
        // The master's connections die with it; its proxy must be clean when it rejoins.
        if (cut) await cut.proxy.removeToxic(cut.name);
      }
      ctx.note(
        `killed the Redis master ${killed.host}:${killed.port}${cut ? ` after its replicas missed ${action.replicasMissMs} ms of its writes` : ""}`,
      );
      return {
        startedAt,
        remove: async () => {
          await group.waitForFailover(killed);
          await group.restart(killed);
          await group.waitForReplicaSync();
        },
      };
    }
    case "kill-redis": {
      const redis = stack.redis;
      if (redis instanceof StartedRedisSentinelGroup) throw new Error("kill-redis needs a single Redis");
      await redis.kill();
      return { remove: () => redis.start() };
    }
    case "stop-kube-apiserver":
      await stack.kube.stopApiServer();
      return { remove: () => stack.kube.startApiServer() };
    case "restart-etcd":
      await stack.kube.etcd.stop();
      return { remove: async () => void (await stack.kube.etcd.start()) };
    case "data-storage": {
      const ds = stack.dataStorage;
      if (action.mode === "kill") {
        await ds.kill();
        return { remove: () => ds.start() };
      }
      await ds.setFault(action.mode);
      return { remove: () => ds.setFault("none") };
    }
    case "cpu-quota": {
      const group = await CpuCgroup.create(`gateway-cpu-${++cgroupSeq}`);
      try {
        await group.setQuota(action.cores);
        group.add(gatewayPid(stack));
      } catch (err) {
        await group.remove();
        throw err;
      }
      let figures: Record<string, number> = {};
      return {
        remove: async () => {
          // The counters go with the group: read them first.
          const s = group.stats();
          figures = {
            "CPU quota (cores)": action.cores,
            "CFS periods throttled": s.nrThrottled,
            "CFS periods": s.nrPeriods,
            "time throttled (s)": Math.round(s.throttledTimeNs / 1e7) / 100,
          };
          await group.remove();
        },
        figures: () => figures,
      };
    }
    case "burst": {
      const load = ctx.load;
      if (!load) throw new Error("burst needs the background load running");
      const burst = load.burst(action.rate, action.maxInFlight, action.alertsPerRequest);
      return {
        remove: () => burst.stop(),
        figures: () => ({
          "burst rate (requests/s)": action.rate,
          ...(action.alertsPerRequest && { "alerts per burst request": action.alertsPerRequest }),
          "burst requests sent": burst.sent(),
          "burst arrivals dropped (sender at its in-flight cap)": burst.dropped(),
        }),
      };
    }
    case "corrupt-sender": {
      const load = ctx.load;
      if (!load) throw new Error("corrupt-sender needs the background load running");
      const bodies = corruptedBodies(action.corruption);
      const base = action.via === "ingress" ? stack.ingressUrl() : (stack.gateway?.getUrl() ?? "");
      let i = 0;
      const timer = setInterval(() => {
        const body = bodies[i++ % bodies.length] as string | Uint8Array;
        load.sendCustom(`${base}/api/v1/signals/prometheus`, body, "corrupt");
      }, 1000 / action.rate);
      return { remove: async () => clearInterval(timer) };
    }
    case "combined": {
      if (action.actions.length === 0) throw new Error("combined fault: actions must not be empty");
      const parts: InjectedFault[] = [];
      // Newest first; one that fails does not keep the others in place.
      const removeAll = async () => {
        const errors: unknown[] = [];
        for (const part of [...parts].reverse()) await part.remove().catch((err: unknown) => errors.push(err));
        if (errors.length > 0) throw errors[0];
      };
      try {
        for (const part of action.actions) parts.push(await inject(part, ctx));
      } catch (err) {
        await removeAll().catch(() => undefined);
        throw err;
      }
      return {
        remove: removeAll,
        figures: () => Object.assign({}, ...parts.map((part) => part.figures?.() ?? {})),
      };
    }
  }
}

function addToxic(
  proxy: ToxicProxy,
  name: string,
  type: string,
  attributes: Record<string, number>,
  stream: "upstream" | "downstream" = "downstream",
): Promise<unknown> {
  const options = { name, stream, ...attributes };
  switch (type) {
    case "latency":
      return proxy.addLatency(options as Parameters<ToxicProxy["addLatency"]>[0]);
    case "reset_peer":
      return proxy.addResetPeer(options as Parameters<ToxicProxy["addResetPeer"]>[0]);
    case "limit_data":
      return proxy.addLimitData(options as Parameters<ToxicProxy["addLimitData"]>[0]);
    case "slicer":
      return proxy.addSlicer(options as Parameters<ToxicProxy["addSlicer"]>[0]);
    case "timeout":
      return proxy.addTimeout(options as Parameters<ToxicProxy["addTimeout"]>[0]);
    case "bandwidth":
      return proxy.addBandwidth(options as Parameters<ToxicProxy["addBandwidth"]>[0]);
    default:
      throw new Error(`unknown toxic type ${JSON.stringify(type)}`);
  }
}
