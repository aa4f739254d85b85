import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Redis } from "ioredis";
import { binary, scratchDir } from "../paths.js";
import { eventually } from "../poll.js";
import { freePort } from "../ports.js";
import { tcpReady } from "../probes.js";
import { ManagedProcess } from "../supervisor.js";
import { RedisServer, type StartedRedisServer } from "./redis.js";
import type { StartedToxiproxy, ToxicProxy } from "./toxiproxy.js";

export interface Address {
  host: string;
  port: number;
}

interface Sentinel {
  process: ManagedProcess;
  port: number;
}

const HOST = "127.0.0.1";

function show(addr: Address): string {
  return `${addr.host}:${addr.port}`;
}

/** `INFO` text as a record. */
function parseInfo(text: string): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const line of text.split("\r\n")) {
    const at = line.indexOf(":");
    if (at > 0 && !line.startsWith("#")) fields[line.slice(0, at)] = line.slice(at + 1);
  }
  return fields;
}

/** A flat [key, value, ...] reply (SENTINEL MASTER, SENTINEL REPLICAS) as a record. */
function pairs(reply: unknown): Record<string, string> {
  const flat = reply as string[];
  const fields: Record<string, string> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) fields[String(flat[i])] = String(flat[i + 1]);
  return fields;
}

/**
 * One command on a short-lived connection that fails at once instead of
 * retrying: a probe must report a dead node, not wait for it.
 */
async function ask(addr: Address, password: string | undefined, ...command: [string, ...string[]]): Promise<unknown> {
  const conn = new Redis({
    host: addr.host,
    port: addr.port,
    password,
    lazyConnect: true,
    connectTimeout: 1000,
    commandTimeout: 2000,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    retryStrategy: () => null,
  });
  conn.on("error", () => {}); // the rejected call reports it
  try {
    await conn.connect();
    return await conn.call(...command);
  } finally {
    conn.disconnect();
  }
}

/**
 * A master, its replicas and the sentinels watching them: real redis-server
 * and redis-sentinel processes on loopback.
 * `const group = await new RedisSentinelGroup().withReplicas(2).withSentinels(3).withPassword("pw").start()`
 */
export class RedisSentinelGroup {
  private replicas = 2;
  private sentinels = 3;
  private quorum: number | undefined;
  private password: string | undefined;
  private masterName = "gwmaster";
  private downAfterMs = 1500;
  // Short, because a sentinel that lost a vote retries only after twice this long.
  private failoverTimeoutMs = 6000;
  private toxiproxy: StartedToxiproxy | undefined;

  withReplicas(count: number): this {
    this.replicas = count;
    return this;
  }
  withSentinels(count: number): this {
    this.sentinels = count;
    return this;
  }
  /** Sentinels that must agree the master is down (default: a majority). */
  withQuorum(quorum: number): this {
    this.quorum = quorum;
    return this;
  }
  withPassword(password: string): this {
    this.password = password;
    return this;
  }
  withMasterName(name: string): this {
    this.masterName = name;
    return this;
  }
  /**
   * How long the master must be unreachable before it counts as down; more
   * than 1000 ms. Sentinels ping every min(downAfter, 1000) ms and restart
   * that clock when they switch master, so at 1000 ms a freshly promoted
   * master can be declared down before its first PING is even answered,
   * which starts a second, spurious failover.
   */
  withDownAfterMs(ms: number): this {
    this.downAfterMs = ms;
    return this;
  }
  withFailoverTimeoutMs(ms: number): this {
    this.failoverTimeoutMs = ms;
    return this;
  }

  /**
   * Puts a proxy `redis-node-<i>` on `toxiproxy` in front of every node, and
   * every node announces it (replica-announce-ip/port): replicas replicate
   * from the master's proxy, sentinels monitor and name nodes by their
   * proxies. A toxic on a node's proxy then hits its replication stream (a
   * latency downstream of the master's proxy makes replicas lag) and the
   * sentinels' view of it; the group's own probes and `getServer(node).client()`
   * go to the node directly. The proxies stay on `toxiproxy` until it stops
   * (tested with the local ToxiproxyServer).
   */
  withReplicationProxy(toxiproxy: StartedToxiproxy): this {
    this.toxiproxy = toxiproxy;
    return this;
  }

  private validate(): number {
    const quorum = this.quorum ?? Math.floor(this.sentinels / 2) + 1;
    const checks: [boolean, string][] = [
      [Number.isInteger(this.replicas) && this.replicas >= 1, `replicas must be an integer >= 1, got ${this.replicas}`],
      [
        Number.isInteger(this.sentinels) && this.sentinels >= 1,
        `sentinels must be an integer >= 1, got ${this.sentinels}`,
      ],
      [
        Number.isInteger(quorum) && quorum >= 1 && quorum <= this.sentinels,
        `quorum must be 1..${this.sentinels}, got ${quorum}`,
      ],
      [
        /^[\w.-]+$/.test(this.masterName),
        `masterName must be letters, digits, '.', '_' or '-', got "${this.masterName}"`,
      ],
      [
        Number.isInteger(this.downAfterMs) && this.downAfterMs > 1000,
        `downAfterMs must be an integer above 1000 (the sentinel ping period), got ${this.downAfterMs}`,
      ],
      [
        Number.isInteger(this.failoverTimeoutMs) && this.failoverTimeoutMs > 0,
        `failoverTimeoutMs must be a positive integer, got ${this.failoverTimeoutMs}`,
      ],
    ];
    for (const [ok, message] of checks) if (!ok) throw new Error(`RedisSentinelGroup: ${message}`);
    return quorum;
  }

  /** Node `index`: behind its proxy (on a port known before it starts, so the proxy can point at it) if any. */
  private async node(index: number, proxies: ToxicProxy[]): Promise<RedisServer> {
    const node = new RedisServer()
      // Every node may become master; diskless sync without delay resyncs a rejoining node in milliseconds.
      .withConfig("repl-diskless-sync", "yes")
      .withConfig("repl-diskless-sync-delay", "0");
    if (this.password) node.withPassword(this.password);
    if (this.toxiproxy) {
      const port = await freePort();
      const proxy = await this.toxiproxy.createProxy(`redis-node-${index}`, `${HOST}:${port}`);
      proxies.push(proxy);
      node
        .withPort(port)
        .withConfig("replica-announce-ip", proxy.getListenHost())
        .withConfig("replica-announce-port", String(proxy.getListenPort()));
    }
    return node;
  }

  async start(): Promise<StartedRedisSentinelGroup> {
    const quorum = this.validate();
    const proxies: ToxicProxy[] = [];
    const group = new StartedRedisSentinelGroup(this.masterName, this.password, scratchDir("sentinel"), proxies);
    try {
      group.nodes.push(await (await this.node(0, proxies)).start());
      const master = group.getNodes()[0] as Address;
      for (let i = 1; i <= this.replicas; i++) {
        const replica = await this.node(i, proxies);
        group.nodes.push(await replica.withConfig("replicaof", master.host, String(master.port)).start());
      }
      for (let i = 0; i < this.sentinels; i++) {
        group.sentinels.push(await this.startSentinel(group.dir, master, quorum));
      }
      await group.waitUntilWatched(this.replicas, this.sentinels);
      return group;
    } catch (err) {
      await group.stop();
      throw err;
    }
  }

  private async startSentinel(dir: string, master: Address, quorum: number): Promise<Sentinel> {
    const port = await freePort();
    const name = this.masterName;
    // Each sentinel rewrites its own file (known replicas, peers, epochs), so each gets its own.
    const config = join(dir, `sentinel-${port}.conf`);
    writeFileSync(
      config,
      [
        `port ${port}`,
        `bind ${HOST}`,
        "protected-mode no",
        `dir ${dir}`,
        `sentinel monitor ${name} ${master.host} ${master.port} ${quorum}`,
        // Quoted: the config parser takes "..." with backslash escapes, so any password survives.
        ...(this.password ? [`sentinel auth-pass ${name} ${JSON.stringify(this.password)}`] : []),
        `sentinel down-after-milliseconds ${name} ${this.downAfterMs}`,
        `sentinel failover-timeout ${name} ${this.failoverTimeoutMs}`,
        "",
      ].join("\n"),
    );
    const proc = new ManagedProcess({
      name: `redis-sentinel-${port}`,
      command: binary("redis-sentinel"),
      args: [config],
      ready: () => tcpReady(port),
      readyTimeoutMs: 15_000,
    });
    await proc.start();
    return { process: proc, port };
  }
}

export class StartedRedisSentinelGroup {
  /** The redis-server nodes in start order (the first was the initial master). */
  readonly nodes: StartedRedisServer[] = [];
  readonly sentinels: Sentinel[] = [];

  constructor(
    private readonly masterName: string,
    private readonly password: string | undefined,
    readonly dir: string,
    /** Node proxies in node order (withReplicationProxy), else empty. */
    private readonly proxies: ToxicProxy[],
  ) {}

  getMasterName(): string {
    return this.masterName;
  }

  getSentinels(): Address[] {
    return this.sentinels.map((s) => ({ host: HOST, port: s.port }));
  }

  /** "host:port,host:port" as the gateway's configuration takes it. */
  getSentinelAddresses(): string {
    return this.getSentinels().map(show).join(",");
  }

  /**
   * Every redis-server node, running or not, in node order, by the address
   * the sentinels name it: its proxy with withReplicationProxy(). Every verb
   * taking an Address accepts either address of a node.
   */
  getNodes(): Address[] {
    return this.nodes.map((n, i) => {
      const proxy = this.proxies[i];
      return proxy ? { host: proxy.getListenHost(), port: proxy.getListenPort() } : { host: HOST, port: n.getPort() };
    });
  }

  /** The node proxies in node order (`redis-node-<i>`); only with withReplicationProxy(). */
  getNodeProxies(): ToxicProxy[] {
    if (this.proxies.length === 0) {
      throw new Error("getNodeProxies(): the group was started without withReplicationProxy()");
    }
    return [...this.proxies];
  }

  /** The proxy in front of one node; only with withReplicationProxy(). */
  getNodeProxy(node: Address): ToxicProxy {
    return this.getNodeProxies()[this.indexOf(node)] as ToxicProxy;
  }

  /** The proxy in front of the current master (downstream of it runs the replication stream). */
  async getMasterProxy(): Promise<ToxicProxy> {
    return this.getNodeProxy(await this.getMaster());
  }

  /** The redis-server of a node: its `client()` connects directly, past any proxy. */
  getServer(node: Address): StartedRedisServer {
    return this.nodes[this.indexOf(node)] as StartedRedisServer;
  }

  getPassword(): string | undefined {
    return this.password;
  }

  /** The master most sentinels name; fails when no majority of them agrees. */
  async getMaster(): Promise<Address> {
    const views = await this.sentinelViews();
    const named = views.filter((v): v is Address => typeof v !== "string");
    const majority = named.find((a) => named.filter((b) => show(b) === show(a)).length > views.length / 2);
    if (majority) return majority;
    throw new Error(`no majority of sentinels agrees on the master of ${this.masterName}: ${JSON.stringify(views)}`);
  }

  /**
   * A client that finds the master through the sentinels and rides out a
   * failover: commands wait (no retry limit) while it reconnects quickly.
   */
  client(): Redis {
    return new Redis({
      sentinels: this.getSentinels(),
      name: this.masterName,
      password: this.password,
      maxRetriesPerRequest: null,
      retryStrategy: (times) => Math.min(times * 50, 500),
      sentinelRetryStrategy: (times) => Math.min(times * 100, 1000),
      connectTimeout: 2000,
    });
  }

  /**
   * `INFO replication` of one node (asked directly) as a record (role,
   * master_port, master_link_status, ...); ports in it are the announced ones.
   */
  async getReplicationInfo(node: Address): Promise<Record<string, string>> {
    const direct = { host: HOST, port: this.getServer(node).getPort() };
    return parseInfo(String(await ask(direct, this.password, "INFO", "replication")));
  }

  /**
   * How many bytes of the replication stream each running replica has not
   * processed yet: the master's offset, then each replica's, read directly.
   */
  async getReplicaLag(): Promise<{ replica: Address; bytes: number }[]> {
    const master = await this.getMaster();
    const masterOffset = Number((await this.getReplicationInfo(master)).master_repl_offset);
    const replicas = this.runningReplicas(master);
    return Promise.all(
      replicas.map(async (replica) => {
        const offset = Number((await this.getReplicationInfo(replica)).slave_repl_offset);
        return { replica, bytes: Math.max(0, masterOffset - offset) };
      }),
    );
  }

  /** SIGKILLs the current master and returns its address. */
  async killMaster(): Promise<Address> {
    const master = await this.getMaster();
    await this.getServer(master).kill();
    return master;
  }

  /**
   * Starts a killed node again, empty (as after a crash without persistence) and as a replica
   * of the master the sentinels name, as a pod's start script asks Sentinel first: a node back
   * as a master would take writes (a client following a sentinel that has not seen the failover
   * yet) until the sentinels demote it and its resync drops them. Waits until the sentinels
   * count it as a replica of the current master.
   */
  async restart(node: Address, { timeoutMs = 60_000 } = {}): Promise<void> {
    const server = this.getServer(node);
    if (server.process.running) {
      throw new Error(`restart(${show(node)}): the node is running; restart brings back a killed node`);
    }
    await server.start(await this.getMaster());
    await eventually(
      async () => {
        const [master, info] = await Promise.all([this.getMaster(), this.getReplicationInfo(node)]);
        if (info.role !== "slave" || info.master_port !== String(master.port)) {
          throw new Error(`role ${info.role}, master port ${info.master_port}, current master ${show(master)}`);
        }
        return true;
      },
      // Sentinels wait a few hello periods (~8 s) before reconfiguring a returning node.
      { what: `${show(node)} to rejoin as a replica of the current master`, timeoutMs, intervalMs: 250 },
    );
  }

  /**
   * Waits until every sentinel names a master other than `oldMaster` and that
   * node itself reports role:master. Returns the new master.
   */
  async waitForFailover(oldMaster: Address, { timeoutMs = 30_000 } = {}): Promise<Address> {
    return eventually(
      async () => {
        const views = await this.sentinelViews();
        const first = views[0];
        const answers = new Set(views.map((v) => (typeof v === "string" ? v : show(v))));
        if (!first || typeof first === "string" || answers.size !== 1) {
          throw new Error(`sentinels disagree or fail: ${JSON.stringify(views)}`);
        }
        if (show(first) === show(oldMaster)) throw new Error(`sentinels still name ${show(oldMaster)}`);
        const info = await this.getReplicationInfo(first);
        if (info.role !== "master") throw new Error(`${show(first)} named master but reports role ${info.role}`);
        return first;
      },
      { what: `a failover away from ${show(oldMaster)}`, timeoutMs, intervalMs: 100 },
    );
  }

  /**
   * Waits until every running replica is linked to the master and has caught
   * up with its offset, and every sentinel sees it healthy. Only then can the
   * group survive the next master kill without losing the data set.
   */
  async waitForReplicaSync({ timeoutMs = 60_000 } = {}): Promise<void> {
    await eventually(
      async () => {
        const master = await this.getMaster();
        const masterInfo = await this.getReplicationInfo(master);
        if (masterInfo.role !== "master") throw new Error(`${show(master)} reports role ${masterInfo.role}`);
        const masterOffset = Number(masterInfo.master_repl_offset);
        const replicas = this.runningReplicas(master);
        for (const replica of replicas) {
          // Under write load a lagging replica is never level with the master's latest offset:
          // in sync means it reaches the offset the master had when asked, within a moment.
          await eventually(
            async () => {
              const info = await this.getReplicationInfo(replica);
              const synced =
                info.role === "slave" &&
                info.master_port === String(master.port) &&
                info.master_link_status === "up" &&
                info.master_sync_in_progress === "0" &&
                Number(info.slave_repl_offset) >= masterOffset;
              if (!synced)
                throw new Error(`${show(replica)} not in sync with ${show(master)}: ${JSON.stringify(info)}`);
              return true;
            },
            { what: `${show(replica)} to reach offset ${masterOffset}`, timeoutMs: 2_000, intervalMs: 20 },
          );
        }
        for (const sentinel of this.getSentinels()) {
          const known = ((await ask(sentinel, undefined, "SENTINEL", "REPLICAS", this.masterName)) as unknown[]).map(
            pairs,
          );
          for (const replica of replicas) {
            const flags = known.find((r) => r.port === String(replica.port))?.flags ?? "unknown";
            if (flags !== "slave") throw new Error(`sentinel ${show(sentinel)} sees ${show(replica)} as ${flags}`);
          }
        }
        return true;
      },
      { what: "every running replica in sync and seen healthy by every sentinel", timeoutMs, intervalMs: 250 },
    );
  }

  /** Waits until every sentinel watches the master, all replicas and all other sentinels. */
  async waitUntilWatched(replicas: number, sentinels: number, { timeoutMs = 30_000 } = {}): Promise<void> {
    await eventually(
      async () => {
        for (const sentinel of this.getSentinels()) {
          const master = pairs(await ask(sentinel, undefined, "SENTINEL", "MASTER", this.masterName));
          if (master["num-slaves"] !== String(replicas) || master["num-other-sentinels"] !== String(sentinels - 1)) {
            throw new Error(`sentinel ${show(sentinel)} sees ${JSON.stringify(master)}`);
          }
        }
        return true;
      },
      { what: `every sentinel to see ${replicas} replicas and ${sentinels - 1} other sentinels`, timeoutMs },
    );
    await this.waitForReplicaSync({ timeoutMs });
  }

  /** Sentinels first, so none starts a failover while the nodes go down. */
  async stop(): Promise<void> {
    await Promise.all(this.sentinels.map((s) => s.process.stop()));
    await Promise.all(this.nodes.map((n) => n.stop()));
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** Each sentinel's answer to get-master-addr-by-name, or why it gave none. */
  private sentinelViews(): Promise<(Address | string)[]> {
    return Promise.all(
      this.getSentinels().map(async (sentinel) => {
        try {
          const reply = (await ask(sentinel, undefined, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", this.masterName)) as
            | string[]
            | null;
          if (!reply) return `sentinel ${show(sentinel)} does not know ${this.masterName}`;
          return { host: String(reply[0]), port: Number(reply[1]) };
        } catch (err) {
          return `sentinel ${show(sentinel)}: ${(err as Error).message}`;
        }
      }),
    );
  }

  /** Running nodes other than `master`, by their announced addresses. */
  private runningReplicas(master: Address): Address[] {
    const masterAt = this.indexOf(master);
    return this.getNodes().filter((_, i) => i !== masterAt && this.nodes[i]?.process.running);
  }

  /** Index of a node given either of its addresses (direct or proxied). */
  private indexOf(node: Address): number {
    const at = this.nodes.findIndex(
      (n, i) => n.getPort() === node.port || this.proxies[i]?.getListenPort() === node.port,
    );
    if (at < 0) throw new Error(`${show(node)} is not a node of this group (${this.getNodes().map(show).join(", ")})`);
    return at;
  }
}
