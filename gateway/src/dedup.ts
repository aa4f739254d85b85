import type { Redis } from "ioredis";
import { dedupKey, RECORD, RELEASE, SIGHT, tokenSource, windowKey } from "./dedup-scripts.js";
import { type KubeClient, oldestActive } from "./kube.js";
import type { Log } from "./log.js";
import { type RedisLink, RedisUnavailableError } from "./redis-link.js";
import type { RemediationRequestObject } from "./remediation-request.js";
import { sleep } from "./retry.js";
import type { RemediationRequestIndex } from "./rr-index.js";
import { parseRef, type RRRef, refText, type StatusFlusher } from "./status-flusher.js";
import { type GatewayConfig, ProblemError, type Signal } from "./types.js";

export { dedupKey };

/** Marker stored as remediationRequestRef for signals folded into a storm window. */
export const STORM_REF_PREFIX = "storm:";

export interface Occurrences {
  occurrenceCount: number;
  firstSeenAt: string;
  lastSeenAt: string;
}

/** The caller creates (or adopts) the RemediationRequest and then settles the claim exactly once. */
export interface Claim {
  firstSeenAt: string;
  /** Degraded mode: what the Kubernetes lookup already found (all phases). */
  known?: RemediationRequestObject[];
  /** Creation tokens of earlier claimers whose creation had no known outcome: their request may exist. */
  orphans: string[];
  /** Records the request; `adopted` requests add their existing count. */
  commit(rr: RemediationRequestObject, adopted: boolean): Promise<Occurrences>;
  /** The signal went into storm window `windowId` instead; `recorded`: the storm check already noted it in Redis. */
  foldIntoStorm(windowId: string, recorded: boolean): Promise<void>;
  /**
   * Creation failed: this sighting is not counted and another caller may claim.
   * `orphan`: the token of a creation with no known outcome, for the next claimer.
   */
  release(orphan?: string): Promise<void>;
}

export type Sighting =
  | ({ kind: "duplicate"; ref: RRRef } & Occurrences)
  | { kind: "new"; claim: Claim }
  /** A repeat of a signal folded into a storm, counted in the window (`ref`: the window's request, once it exists). */
  | ({ kind: "storm-member"; windowId: string; ref?: RRRef } & Occurrences)
  /** It was folded into a storm window that has expired since. */
  | { kind: "storm-lost" };

/** Polling another replica's claim: first delay, doubling up to the cap. */
const POLL_FIRST_MS = 20;
const POLL_MAX_MS = 500;
/** How long a degraded-mode lookup result is reused: bounds API reads per duplicate. */
const DEGRADED_CACHE_MS = 2_000;

/** RECORD's ARGV: ref, base count, firstSeen, ttlMs. */
type RecordArgs = [string, number, string, number];

interface SightReply {
  state: "claimed" | "known" | "pending" | "storm" | "storm-lost";
  ref: string;
  occurrences: Occurrences;
  windowId: string;
  orphan: string;
}

function toOccurrences(count: unknown, firstSeen: unknown, lastSeen: unknown): Occurrences {
  return { occurrenceCount: Number(count), firstSeenAt: String(firstSeen), lastSeenAt: String(lastSeen) };
}

/** How long a claim holds before another caller may assume its creator died. */
function claimLeaseMs(cfg: GatewayConfig): number {
  const { maxAttempts, maxBackoffMs } = cfg.processing.retry;
  return maxAttempts * (cfg.kubernetes.requestTimeoutMs + maxBackoffMs) * 2 + 5_000;
}

/** How long a sighting waits for someone else's creation before answering 503 (below the request deadline). */
function maxWaitMs(cfg: GatewayConfig): number {
  return Math.min(claimLeaseMs(cfg) / 2, cfg.server.requestTimeoutMs * 0.8);
}

/** Settles when `work` does or at `until` (epoch ms), whichever is first. */
async function waitUntil(work: Promise<void>, until: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, Math.max(0, until - Date.now()));
  });
  await Promise.race([work, expired]);
  clearTimeout(timer);
}

/**
 * Check-and-claim (section 4). With Redis: one Lua call decides and counts;
 * a sighting of a fingerprint someone is still creating is not counted yet:
 * it waits for the creation (in this process: on the creation itself; another
 * replica's: polling with backoff) and is counted once the request is known,
 * so every 2xx is either the creator or counted once (D2). Each sighting
 * carries a token, so a call retried after a lost answer does not count twice.
 * Without Redis: the Kubernetes API is the dedup store (requests of the
 * fingerprint not in a terminal phase, from the index or a list), serialized
 * per fingerprint in this process.
 */
export class Deduplicator {
  private readonly locks = new Map<string, Promise<void>>();
  private readonly degradedCache = new Map<string, { rr: RemediationRequestObject; until: number }>();
  /**
   * Creations this process is running, by fingerprint, claimed in Redis or not: every sighting
   * of the fingerprint waits for it, in either mode. Two creators of one request would each count
   * only themselves, and an adopter reads the count of a request created without Redis from its
   * status, so such a creation settles once its first status is written.
   */
  private readonly creating = new Map<string, Promise<void>>();
  /**
   * Redis writes that could not be made or whose outcome is unknown (Redis went
   * away mid-call), by what they settle: redone by `repair` before Redis counts
   * as available again, so no claim is left stranded for its whole lease and no
   * sighting counted via the Kubernetes API stays counted in Redis too.
   */
  private readonly repairs = new Map<string, (redis: Redis) => Promise<unknown>>();
  /** Degraded mode: creations with no known outcome, by fingerprint (Claim.orphans). */
  private readonly orphans = new Map<string, string[]>();
  private readonly nextToken = tokenSource();

  constructor(
    private readonly redis: RedisLink,
    private readonly kube: KubeClient,
    private readonly index: RemediationRequestIndex,
    private readonly flusher: StatusFlusher,
    private readonly log: Log,
  ) {}

  /** `namespace` is where the request lives or would be created (placement). */
  async sight(signal: Signal, namespace: string, cfg: GatewayConfig): Promise<Sighting> {
    if (this.redis.available()) {
      const token = this.nextToken();
      try {
        return await this.sightInRedis(signal, cfg, token);
      } catch (err) {
        if (!(err instanceof RedisUnavailableError)) throw err;
        // Its check-and-claim may have run with the answer lost; the Kubernetes API counts it now.
        this.releaseLater(signal.fingerprint, token);
      }
    }
    return this.sightInKubernetes(signal, namespace, cfg);
  }

  /** Redoes the Redis writes that Redis missed while it was away (a recovery hook: Redis is not yet "available"). */
  async repair(): Promise<void> {
    const due = [...this.repairs];
    await this.redis.replay(async (r) => {
      for (const [, write] of due) await write(r);
    });
    // Done and confirmed; one set again meanwhile (a newer record) stays.
    for (const [key, write] of due) if (this.repairs.get(key) === write) this.repairs.delete(key);
  }

  /** Takes the sighting's count and claim back once Redis answers again. */
  private releaseLater(fingerprint: string, token: string, orphan = ""): void {
    this.repairs.set(`release ${token}`, (r) => this.runRelease(r, fingerprint, token, orphan));
  }

  /** RELEASE; if a request is recorded meanwhile (another replica), its status is due. */
  private async runRelease(r: Redis, fingerprint: string, token: string, orphan: string): Promise<void> {
    const key = dedupKey(fingerprint);
    const reply = (await RELEASE.run(r, [key], [token, orphan])) as [number, string] | null;
    if (reply?.[1]) this.flusher.touch(key);
  }

  /** Records where the fingerprint's signals went once Redis answers again, ending the creator's claim. */
  private recordLater(fingerprint: string, args: RecordArgs): void {
    const key = dedupKey(fingerprint);
    this.repairs.set(`record ${fingerprint}`, async (r) => {
      await RECORD.run(r, [key], args);
      this.flusher.touch(key);
    });
  }

  /** Drops the state of a fingerprint whose storm window vanished, so it is seen afresh. */
  async forget(fingerprint: string): Promise<void> {
    await this.redis.run("forget", (r) => r.del(dedupKey(fingerprint)));
  }

  // --- Redis ---------------------------------------------------------------

  private async callSight(signal: Signal, cfg: GatewayConfig, token: string): Promise<SightReply> {
    const now = new Date();
    const resource = `${signal.resource.kind}/${signal.resource.name}`;
    const { ttlMs } = cfg.processing.deduplication;
    const args = [
      signal.fingerprint,
      signal.signalName,
      signal.namespace,
      resource,
      now.toISOString(),
      now.getTime(),
      ttlMs,
      token,
      claimLeaseMs(cfg),
      cfg.processing.storm.aggregationWindowMs + ttlMs,
    ];
    const key = dedupKey(signal.fingerprint);
    const reply = (await this.redis.runConfirmed("sight", (r) => SIGHT.run(r, [key], args))) as string[];
    return {
      state: reply[0] as SightReply["state"],
      ref: reply[1] ?? "",
      occurrences: toOccurrences(reply[2], reply[3], reply[4]),
      windowId: reply[0] === "storm" ? (reply[5] ?? "") : "",
      orphan: reply[0] === "claimed" ? (reply[5] ?? "") : "",
    };
  }

  private async sightInRedis(signal: Signal, cfg: GatewayConfig, token: string): Promise<Sighting> {
    const fp = signal.fingerprint;
    const until = Date.now() + maxWaitMs(cfg);
    for (let polls = 0; ; polls++) {
      const local = this.creating.get(fp);
      if (local) await waitUntil(local, until);
      const reply = await this.callSight(signal, cfg, token);
      if (reply.state !== "pending") return this.fromReply(signal, cfg, token, reply);
      if (Date.now() >= until) throw this.stillCreating();
      // Another replica's claim: nothing to wait on here but Redis.
      if (!this.creating.has(fp)) await sleep(Math.min(POLL_FIRST_MS * 2 ** polls, POLL_MAX_MS, until - Date.now()));
    }
  }

  private fromReply(signal: Signal, cfg: GatewayConfig, token: string, reply: SightReply): Sighting {
    const key = dedupKey(signal.fingerprint);
    switch (reply.state) {
      case "claimed":
        return { kind: "new", claim: this.redisClaim(signal, cfg, token, reply.occurrences, reply.orphan) };
      case "storm-lost":
        return { kind: "storm-lost" };
      case "storm": {
        const ref = parseRef(reply.ref);
        if (ref) this.flusher.touch(windowKey(reply.windowId));
        return { kind: "storm-member", windowId: reply.windowId, ref, ...reply.occurrences };
      }
      default: {
        const ref = parseRef(reply.ref);
        if (!ref) throw new Error(`dedup hash ${key} holds an unreadable remediationRequestRef`);
        this.flusher.touch(key);
        return { kind: "duplicate", ref, ...reply.occurrences };
      }
    }
  }

  /** RECORD; when Redis is unavailable, done again once it is back (and rethrown). */
  private async record(fingerprint: string, ref: string, base: number, firstSeen: string, cfg: GatewayConfig) {
    const args: RecordArgs = [ref, base, firstSeen, cfg.processing.deduplication.ttlMs];
    try {
      return (await this.redis.runConfirmed("record", (r) => RECORD.run(r, [dedupKey(fingerprint)], args))) as
        | string[]
        | null;
    } catch (err) {
      if (err instanceof RedisUnavailableError) this.recordLater(fingerprint, args);
      throw err;
    }
  }

  /** Registers a creation of `fp` in `creating`; the returned function settles it. */
  private startCreating(fp: string): () => void {
    let settle!: () => void;
    const settled = new Promise<void>((resolve) => {
      settle = resolve;
    });
    this.creating.set(fp, settled);
    return () => {
      if (this.creating.get(fp) === settled) this.creating.delete(fp);
      settle();
    };
  }

  /** Thrown when a sighting waited its limit for another creation of its fingerprint. */
  private stillCreating(): ProblemError {
    return new ProblemError(
      503,
      "another request is still creating the RemediationRequest for this signal; retry shortly",
      2,
    );
  }

  /** The claim of a first sighting; until it settles, sightings of the fingerprint in this process wait on it. */
  private redisClaim(signal: Signal, cfg: GatewayConfig, token: string, seen: Occurrences, orphan: string): Claim {
    const fp = signal.fingerprint;
    const done = this.startCreating(fp);
    return {
      firstSeenAt: seen.firstSeenAt,
      orphans: orphan.split(" ").filter(Boolean),
      commit: async (rr, adopted) => {
        try {
          return await this.commit(fp, rr, adopted, seen, cfg);
        } finally {
          done();
        }
      },
      foldIntoStorm: async (windowId, recorded) => {
        try {
          if (!recorded) await this.record(fp, `${STORM_REF_PREFIX}${windowId}`, 0, "", cfg);
        } finally {
          done();
        }
      },
      release: async (uncertain = "") => {
        try {
          await this.redis.runConfirmed("release", (r) => this.runRelease(r, fp, token, uncertain));
        } catch (err) {
          if (err instanceof RedisUnavailableError) this.releaseLater(fp, token, uncertain);
          else
            this.log.warn(
              { err: (err as Error).message },
              "could not release a dedup claim; it expires with its lease",
            );
        } finally {
          done();
        }
      },
    };
  }

  /** Records the request in the hash (ending the claim); `adopted` requests add their existing count. */
  private async commit(
    fp: string,
    rr: RemediationRequestObject,
    adopted: boolean,
    seen: Occurrences,
    cfg: GatewayConfig,
  ): Promise<Occurrences> {
    const ref = refText({ namespace: rr.metadata.namespace, name: rr.metadata.name });
    const existing = adopted ? rr.status?.deduplication : undefined;
    try {
      const reply = await this.record(fp, ref, existing?.occurrenceCount ?? 0, existing?.firstSeenAt ?? "", cfg);
      if (!reply) {
        if (!adopted) this.flusher.initial(dedupKey(fp), rr, seen);
        return seen;
      }
      const result = toOccurrences(reply[1], reply[2], reply[3]);
      if (reply[0] !== ref)
        this.log.warn({ ref, recorded: reply[0] }, "another gateway recorded a different request for this fingerprint");
      if (adopted) this.flusher.touch(dedupKey(fp));
      else this.flusher.initial(dedupKey(fp), rr, result);
      return result;
    } catch (err) {
      // The request exists; it is recorded once Redis is back (or, past other errors, the claim expires and the next claimer adopts it).
      this.log.warn({ ref, err: (err as Error).message }, "could not record the RemediationRequest in Redis");
      if (!adopted) this.flusher.initial(dedupKey(fp), rr, seen);
      return seen;
    }
  }

  // --- Kubernetes (degraded) ------------------------------------------------

  /** Serializes work per fingerprint inside this process; returns the unlock function. */
  private async lock(fingerprint: string): Promise<() => void> {
    const previous = this.locks.get(fingerprint) ?? Promise.resolve();
    let unlock!: () => void;
    const current = new Promise<void>((resolve) => {
      unlock = resolve;
    });
    const chained = previous.then(() => current);
    this.locks.set(fingerprint, chained);
    await previous;
    return () => {
      unlock();
      if (this.locks.get(fingerprint) === chained) this.locks.delete(fingerprint);
    };
  }

  private async sightInKubernetes(signal: Signal, namespace: string, cfg: GatewayConfig): Promise<Sighting> {
    const fp = signal.fingerprint;
    // A creation of this fingerprint here (claimed in Redis before it went away, or in this mode) first.
    const local = this.creating.get(fp);
    if (local) {
      await waitUntil(local, Date.now() + maxWaitMs(cfg));
      if (this.creating.get(fp) === local) throw this.stillCreating();
    }
    const unlock = await this.lock(fp);
    let handedOver = false;
    try {
      const seenAt = new Date().toISOString();
      const cached = this.degradedCache.get(fp);
      let known: RemediationRequestObject[] | undefined;
      let active = cached && cached.until > Date.now() ? cached.rr : undefined;
      if (!active) {
        known = await this.listOrFail(namespace, fp);
        active = oldestActive(known);
      }
      if (active) {
        this.remember(fp, active);
        return { kind: "duplicate", ...this.countWithoutRedis(active, fp, seenAt) };
      }
      handedOver = true;
      return { kind: "new", claim: this.degradedClaim(fp, seenAt, known ?? [], unlock, this.startCreating(fp)) };
    } finally {
      if (!handedOver) unlock();
    }
  }

  private async listOrFail(namespace: string, fingerprint: string): Promise<RemediationRequestObject[]> {
    try {
      return this.index.lookup(namespace, fingerprint) ?? (await this.kube.listByFingerprint(namespace, fingerprint));
    } catch (err) {
      throw new ProblemError(
        503,
        `deduplication is unavailable: Redis is unreachable and the Kubernetes API failed (${(err as Error).message})`,
        5,
      );
    }
  }

  private remember(fp: string, rr: RemediationRequestObject): void {
    const now = Date.now();
    if (this.degradedCache.size >= 10_000) {
      for (const [key, entry] of this.degradedCache) if (entry.until <= now) this.degradedCache.delete(key);
    }
    this.degradedCache.set(fp, { rr, until: now + DEGRADED_CACHE_MS });
  }

  /** One occurrence, queued for the request's status; the answer includes what is still queued. */
  private countWithoutRedis(rr: RemediationRequestObject, fp: string, seenAt: string): { ref: RRRef } & Occurrences {
    const ref = { namespace: rr.metadata.namespace, name: rr.metadata.name };
    this.flusher.addOccurrences(ref, dedupKey(fp), seenAt);
    const status = rr.status?.deduplication;
    return {
      ref,
      occurrenceCount: (status?.occurrenceCount ?? 1) + this.flusher.pendingOccurrences(ref),
      firstSeenAt: status?.firstSeenAt ?? seenAt,
      lastSeenAt: seenAt,
    };
  }

  private degradedClaim(
    fp: string,
    seenAt: string,
    known: RemediationRequestObject[],
    unlock: () => void,
    done: () => void,
  ): Claim {
    const initial: Occurrences = { occurrenceCount: 1, firstSeenAt: seenAt, lastSeenAt: seenAt };
    const settle = () => {
      unlock();
      done();
    };
    return {
      firstSeenAt: seenAt,
      known,
      orphans: this.orphans.get(fp) ?? [],
      commit: async (rr, adopted) => {
        this.orphans.delete(fp);
        this.remember(fp, rr);
        unlock();
        if (!adopted) {
          // Settled once the status holds this count: a Redis claimer adopting it adds it from there.
          void this.flusher.initial(dedupKey(fp), rr, initial, true).finally(done);
          return initial;
        }
        done();
        const { ref: _, ...occurrences } = this.countWithoutRedis(rr, fp, seenAt);
        return occurrences;
      },
      foldIntoStorm: async () => settle(),
      release: async (uncertain) => {
        if (uncertain) {
          if (this.orphans.size >= 10_000) this.orphans.delete(this.orphans.keys().next().value as string);
          this.orphans.set(fp, [uncertain, ...(this.orphans.get(fp) ?? [])].slice(0, 5));
        }
        settle();
      },
    };
  }
}
