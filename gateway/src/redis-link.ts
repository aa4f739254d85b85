import { Redis, type RedisOptions } from "ioredis";
import type { Log } from "./log.js";
import type { Metrics } from "./metrics.js";
import { sleep } from "./retry.js";
import type { GatewayConfig } from "./types.js";

/** Redis did not answer within the per-call deadline (or is known to be down). */
export class RedisUnavailableError extends Error {}

/** How long one logical Redis operation may take, retries included, before the gateway degrades. */
const CALL_DEADLINE_MS = 2_000;
/** One attempt; a hung connection (paused master, partition) must not hold a request. */
const COMMAND_TIMEOUT_MS = 500;
const RETRY_PAUSE_MS = 50;
const PING_INTERVAL_MS = 500;
/** How long a write waits for the replicas' acknowledgement (Sentinel mode). */
const CONFIRM_TIMEOUT_MS = 200;
/** How often the replicas online are counted (Sentinel mode); also on every reconnection. */
const REPLICA_COUNT_INTERVAL_MS = 1_000;
/**
 * Connections for confirmed writes (Sentinel mode). Each WAIT blocks its lane for a replication
 * round trip; with several, a write mostly finds one free or about to be, instead of waiting
 * out one WAIT before its own.
 */
const CONFIRM_LANES = 4;

/** Replies that mean "not now" (failover, loading, demoted master) rather than a bug. */
const TRANSIENT_REPLY = /^(READONLY|LOADING|MASTERDOWN|TRYAGAIN|NOREPLICAS|BUSY|UNBLOCKED|CLUSTERDOWN)/;

function isTransient(err: unknown): boolean {
  const e = err as { name?: string; message?: string };
  if (e?.name !== "ReplyError") return true; // connection closed, timeout, not writable
  return TRANSIENT_REPLY.test(e.message ?? "");
}

/**
 * Commands never wait in ioredis' queues: the offline queue is off and
 * unanswered commands are not resent after a reconnect. A command that was
 * given up on therefore cannot run later behind the gateway's back; the
 * retry loop in `run` is the only retry, bounded by CALL_DEADLINE_MS.
 */
function clientOptions(cfg: GatewayConfig["redis"]): RedisOptions {
  const common: RedisOptions = {
    password: cfg.password,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    commandTimeout: COMMAND_TIMEOUT_MS,
    connectTimeout: 1_000,
    retryStrategy: (times) => Math.min(times * 50, 500),
    // A demoted master answers READONLY: reconnect so Sentinel points us at the new one.
    reconnectOnError: (err) => err.message.startsWith("READONLY"),
  };
  if (cfg.mode === "single") {
    const url = new URL(cfg.url);
    return {
      ...common,
      host: url.hostname,
      port: Number(url.port || 6379),
      password: cfg.password ?? (url.password ? decodeURIComponent(url.password) : undefined),
      db: url.pathname.length > 1 ? Number(url.pathname.slice(1)) : 0,
      tls: url.protocol === "rediss:" ? {} : undefined,
    };
  }
  return {
    ...common,
    sentinels: cfg.sentinels,
    name: cfg.masterName,
    // Applied to every address a sentinel hands out: the master, replicas and discovered sentinels.
    natMap: cfg.natMap,
    sentinelRetryStrategy: (times) => Math.min(times * 100, 1_000),
  };
}

/** A connection whose errors are logged, not thrown: `run` decides what a failed command means. */
function connect(options: RedisOptions, log: Log): Redis {
  const client = new Redis(options);
  client.on("error", (err: Error) => log.debug({ err: err.message }, "redis connection error"));
  return client;
}

/**
 * A connection for confirmed writes (Sentinel mode). WAIT blocks the connection it is sent on
 * and covers only that connection's writes, so a write and its WAIT share a lane, and the
 * gateway's other commands never queue behind a WAIT.
 */
class ConfirmLane {
  readonly client: Redis;
  /** Bumped on every (re)connection: a WAIT on a new connection says nothing about earlier writes. */
  epoch = 0;
  private currentWait: Promise<number> | undefined;
  private nextWait: Promise<number> | undefined;
  /** When the WAIT in flight was sent; a write joining a busy lane waits for the rest of it. */
  waitSentAt = 0;

  constructor(options: RedisOptions, log: Log) {
    this.client = connect(options, log);
    this.client.on("ready", () => this.epoch++);
  }

  get busy(): boolean {
    return this.currentWait !== undefined;
  }

  /**
   * Group commit: one WAIT covers every write answered on this lane before it was sent, and
   * at most one is in flight; callers arriving meanwhile share the next one.
   */
  confirm(needed: () => number): Promise<number> {
    if (this.nextWait) return this.nextWait;
    if (!this.currentWait) {
      this.currentWait = this.startWait(needed);
      return this.currentWait;
    }
    this.nextWait = this.currentWait.then(() => {
      this.nextWait = undefined;
      this.currentWait = this.startWait(needed);
      return this.currentWait;
    });
    return this.nextWait;
  }

  private startWait(needed: () => number): Promise<number> {
    this.waitSentAt = Date.now();
    const wait = this.client.wait(needed(), CONFIRM_TIMEOUT_MS).catch(() => 0);
    void wait.then(() => {
      if (this.currentWait === wait) this.currentWait = undefined;
    });
    return wait;
  }
}

/**
 * The gateway's Redis connections and their availability (section 4):
 * `run` retries transient failures until a deadline, then marks Redis
 * unavailable (gateway_redis_available 0) and throws RedisUnavailableError
 * so the caller degrades. A background PING brings it back. With a Sentinel
 * group, confirmed writes go through CONFIRM_LANES connections of their own.
 */
export class RedisLink {
  private readonly client: Redis;
  private readonly lanes: ConfirmLane[] = [];
  private up = true;
  /**
   * Replicas the master reports online (Sentinel). A write is confirmed once every one of them
   * has it: Sentinel promotes the replica it last saw furthest ahead, which need not be the one
   * that acknowledged first.
   */
  private online = 1;
  private counter: NodeJS.Timeout | undefined;
  private pinger: NodeJS.Timeout | undefined;
  private readonly recoveryHooks: (() => Promise<void>)[] = [];

  constructor(
    cfg: GatewayConfig["redis"],
    private readonly metrics: Metrics,
    private readonly log: Log,
  ) {
    const options = clientOptions(cfg);
    this.client = connect(options, log);
    this.metrics.redisAvailable.set(1);
    if (cfg.mode === "sentinel") {
      for (let i = 0; i < CONFIRM_LANES; i++) this.lanes.push(new ConfirmLane(options, log));
      this.client.on("ready", () => void this.countReplicas());
      this.counter = setInterval(() => void this.countReplicas(), REPLICA_COUNT_INTERVAL_MS);
      this.counter.unref();
    }
  }

  /** Reads how many replicas the master has online (INFO replication); keeps the last count on failure. */
  private async countReplicas(): Promise<void> {
    try {
      const info = await this.client.info("replication");
      this.online = (info.match(/^slave\d+:.*state=online/gm) ?? []).length;
    } catch {
      // disconnected: the next reconnection or tick reads it again
    }
  }

  /** Replicas a WAIT must hear from: every online one, at least one. */
  private readonly needed = (): number => Math.max(1, this.online);

  /**
   * A connected lane without a WAIT in flight, else the connected one whose WAIT was sent first
   * (it ends first). None connected: the first, whose "not writeable" the caller retries.
   */
  private pickLane(): ConfirmLane {
    let best: ConfirmLane | undefined;
    for (const lane of this.lanes) {
      if (lane.client.status !== "ready") continue;
      if (!lane.busy) return lane;
      if (!best || lane.waitSentAt < best.waitSentAt) best = lane;
    }
    return best ?? (this.lanes[0] as ConfirmLane);
  }

  /** Reads and unconfirmed writes: the main connection, or while it reconnects any connected lane. */
  private readonly anyConnection = (): Redis =>
    this.client.status === "ready"
      ? this.client
      : (this.lanes.find((l) => l.client.status === "ready")?.client ?? this.client);

  available(): boolean {
    return this.up;
  }

  /** Work to finish before Redis counts as available again (e.g. replaying degraded-mode counts). */
  onRecovery(hook: () => Promise<void>): void {
    this.recoveryHooks.push(hook);
  }

  /** `connection` is asked again on every attempt: a retry goes where a connection is up. */
  async run<T>(
    operation: string,
    call: (redis: Redis) => Promise<T>,
    connection: () => Redis = this.anyConnection,
  ): Promise<T> {
    const deadline = Date.now() + CALL_DEADLINE_MS;
    for (;;) {
      if (!this.up) {
        this.metrics.redisOperations.inc({ operation, result: "skipped" });
        throw new RedisUnavailableError(`redis ${operation}: Redis is unavailable`);
      }
      try {
        const value = await call(connection());
        this.metrics.redisOperations.inc({ operation, result: "success" });
        return value;
      } catch (err) {
        if (!isTransient(err)) {
          this.metrics.redisOperations.inc({ operation, result: "error" });
          throw err;
        }
        if (Date.now() + RETRY_PAUSE_MS >= deadline) {
          this.metrics.redisOperations.inc({ operation, result: "unavailable" });
          this.markDown(operation, err as Error);
          throw new RedisUnavailableError(
            `redis ${operation}: no answer within ${CALL_DEADLINE_MS} ms (${(err as Error).message})`,
          );
        }
        this.metrics.redisOperations.inc({ operation, result: "retry" });
        await sleep(RETRY_PAUSE_MS);
      }
    }
  }

  /**
   * `run` for writes that must survive a Sentinel failover: after the write,
   * WAIT until every online replica has it (on the same lane). A write that cannot
   * be confirmed is done again, so it may count twice but is never lost;
   * past the deadline Redis counts as unavailable and the caller degrades.
   * Only for idempotent writes or counts where an over-count is acceptable.
   */
  async runConfirmed<T>(operation: string, call: (redis: Redis) => Promise<T>): Promise<T> {
    if (this.lanes.length === 0) return this.run(operation, call);
    const deadline = Date.now() + CALL_DEADLINE_MS;
    for (;;) {
      let lane = this.lanes[0] as ConfirmLane;
      let epoch = 0;
      const value = await this.run(operation, call, () => {
        lane = this.pickLane();
        epoch = lane.epoch;
        return lane.client;
      });
      const acked = await lane.confirm(this.needed);
      if (acked >= this.needed() && epoch === lane.epoch) return value;
      this.metrics.redisOperations.inc({ operation, result: "unconfirmed" });
      if (Date.now() >= deadline) {
        this.markDown(operation, new Error("the replicas did not acknowledge the write"));
        throw new RedisUnavailableError(
          `redis ${operation}: write not confirmed by the replicas within ${CALL_DEADLINE_MS} ms`,
        );
      }
      await sleep(RETRY_PAUSE_MS);
    }
  }

  /**
   * For replays (recovery work, settling counts): `write` runs whatever the availability,
   * then, with a Sentinel group, must be acknowledged by the replicas on the same lane,
   * or this throws and the caller keeps the work to redo it (it must be idempotent).
   */
  async replay<T>(write: (redis: Redis) => Promise<T>): Promise<T> {
    if (this.lanes.length === 0) return write(this.client);
    const lane = this.pickLane();
    const epoch = lane.epoch;
    const value = await write(lane.client);
    const acked = await lane.confirm(this.needed);
    if (acked < this.needed() || epoch !== lane.epoch)
      throw new Error("the replicas did not acknowledge the replayed writes");
    return value;
  }

  private markDown(operation: string, err: Error): void {
    if (!this.up) return;
    this.up = false;
    this.metrics.redisAvailable.set(0);
    this.log.warn({ operation, err: err.message }, "redis unavailable; deduplicating via the Kubernetes API");
    this.pinger = setInterval(() => void this.probe(), PING_INTERVAL_MS);
    this.pinger.unref();
  }

  private probing = false;

  private async probe(): Promise<void> {
    if (this.probing) return;
    this.probing = true;
    try {
      await this.client.ping();
      for (const hook of this.recoveryHooks) await hook();
      clearInterval(this.pinger);
      this.pinger = undefined;
      this.up = true;
      this.metrics.redisAvailable.set(1);
      this.log.info({}, "redis available again");
    } catch {
      // still down: the next tick tries again
    } finally {
      this.probing = false;
    }
  }

  async close(): Promise<void> {
    clearInterval(this.pinger);
    clearInterval(this.counter);
    await Promise.all(
      [this.client, ...this.lanes.map((lane) => lane.client)].map((c) => c.quit().catch(() => c.disconnect())),
    );
  }
}
