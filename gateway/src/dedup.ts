import { randomUUID } from "node:crypto";
import { RECORD, RELEASE, SIGHT } from "./dedup-scripts.js";
import { type KubeClient, oldestActive } from "./kube.js";
import type { Log } from "./log.js";
import { type RedisLink, RedisUnavailableError } from "./redis-link.js";
import type { RemediationRequestObject } from "./remediation-request.js";
import { sleep } from "./retry.js";
import { parseRef, type RRRef, refText, type StatusFlusher } from "./status-flusher.js";
import { type GatewayConfig, ProblemError, type Signal } from "./types.js";

/**
 * Deduplication state is one Redis hash per fingerprint. The fingerprint
 * already hashes the namespace (section 3), so the state is scoped per
 * namespace without the namespace in the key.
 */
export const dedupKey = (fingerprint: string) => `gateway:dedup:fingerprint:${fingerprint}`;

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
  /** Records the request; `adopted` requests add their existing count. */
  commit(rr: RemediationRequestObject, adopted: boolean): Promise<Occurrences>;
  /** The signal went into storm window `windowId` instead. */
  foldIntoStorm(windowId: string): Promise<void>;
  /** Creation failed: this sighting is not counted and another caller may claim. */
  release(): Promise<void>;
}

export type Sighting =
  | ({ kind: "duplicate"; ref: RRRef } & Occurrences)
  | { kind: "new"; claim: Claim }
  | { kind: "storm-member"; windowId: string };

const POLL_INTERVAL_MS = 20;
/** How long a degraded-mode lookup result is reused: bounds API reads per duplicate. */
const DEGRADED_CACHE_MS = 2_000;

interface SightReply {
  state: "claimed" | "known" | "pending";
  ref: string;
  occurrences: Occurrences;
}

function toOccurrences(count: unknown, firstSeen: unknown, lastSeen: unknown): Occurrences {
  return { occurrenceCount: Number(count), firstSeenAt: String(firstSeen), lastSeenAt: String(lastSeen) };
}

/** How long a claim holds before another caller may assume its creator died. */
function claimLeaseMs(cfg: GatewayConfig): number {
  const { maxAttempts, maxBackoffMs } = cfg.processing.retry;
  return maxAttempts * (cfg.kubernetes.requestTimeoutMs + maxBackoffMs) * 2 + 5_000;
}

/**
 * Check-and-claim (section 4). With Redis: one Lua call decides; concurrent
 * sightings of a fingerprint being created are counted against the claim and
 * wait for its outcome, so every 2xx is either the creator or counted (D2).
 * Without Redis: the Kubernetes API is the dedup store (requests labelled
 * with the fingerprint and not terminal), serialized per fingerprint in this process.
 */
export class Deduplicator {
  private readonly locks = new Map<string, Promise<void>>();
  private readonly degradedCache = new Map<string, { rr: RemediationRequestObject; until: number }>();

  constructor(
    private readonly redis: RedisLink,
    private readonly kube: KubeClient,
    private readonly flusher: StatusFlusher,
    private readonly log: Log,
  ) {}

  /** `namespace` is where the request lives or would be created (placement). */
  async sight(signal: Signal, namespace: string, cfg: GatewayConfig): Promise<Sighting> {
    if (this.redis.available()) {
      try {
        return await this.sightInRedis(signal, namespace, cfg);
      } catch (err) {
        if (!(err instanceof RedisUnavailableError)) throw err;
      }
    }
    return this.sightInKubernetes(signal, namespace);
  }

  /** Drops the state of a fingerprint whose storm window vanished, so it is seen afresh. */
  async forget(fingerprint: string): Promise<void> {
    await this.redis.run("forget", (r) => r.del(dedupKey(fingerprint)));
  }

  // --- Redis ---------------------------------------------------------------

  private async callSight(signal: Signal, cfg: GatewayConfig, token: string, count: boolean): Promise<SightReply> {
    const now = new Date();
    const resource = `${signal.resource.kind}/${signal.resource.name}`;
    const args = [
      signal.fingerprint,
      signal.signalName,
      signal.namespace,
      resource,
      now.toISOString(),
      now.getTime(),
      cfg.processing.deduplication.ttlMs,
      token,
      claimLeaseMs(cfg),
      count ? "1" : "0",
    ];
    const key = dedupKey(signal.fingerprint);
    const reply = (await this.redis.runConfirmed("sight", (r) => SIGHT.run(r, [key], args))) as string[];
    return {
      state: reply[0] as SightReply["state"],
      ref: reply[1] ?? "",
      occurrences: toOccurrences(reply[2], reply[3], reply[4]),
    };
  }

  private async sightInRedis(signal: Signal, namespace: string, cfg: GatewayConfig): Promise<Sighting> {
    const token = randomUUID();
    let reply = await this.callSight(signal, cfg, token, true);
    // Bounded below the request deadline, so a waiting duplicate answers 503 rather than timing out.
    const waitUntil = Date.now() + Math.min(claimLeaseMs(cfg) / 2, cfg.server.requestTimeoutMs * 0.8);
    while (reply.state === "pending") {
      if (Date.now() >= waitUntil) {
        await this.release(signal.fingerprint, token);
        throw new ProblemError(
          503,
          "another request is still creating the RemediationRequest for this signal; retry shortly",
          2,
        );
      }
      await sleep(POLL_INTERVAL_MS);
      try {
        reply = await this.callSight(signal, cfg, token, false);
      } catch (err) {
        // Counted in Redis but Redis is gone: the degraded path answers (a possible over-count, never a loss).
        if (err instanceof RedisUnavailableError) return this.sightInKubernetes(signal, namespace);
        throw err;
      }
    }
    return this.fromReply(signal, cfg, token, reply);
  }

  private fromReply(signal: Signal, cfg: GatewayConfig, token: string, reply: SightReply): Sighting {
    const key = dedupKey(signal.fingerprint);
    if (reply.state === "claimed")
      return { kind: "new", claim: this.redisClaim(signal, cfg, token, reply.occurrences) };
    if (reply.ref.startsWith(STORM_REF_PREFIX))
      return { kind: "storm-member", windowId: reply.ref.slice(STORM_REF_PREFIX.length) };
    const ref = parseRef(reply.ref);
    if (!ref) throw new Error(`dedup hash ${key} holds an unreadable remediationRequestRef`);
    this.flusher.touch(key);
    return { kind: "duplicate", ref, ...reply.occurrences };
  }

  private release(fingerprint: string, token: string): Promise<unknown> {
    return this.redis.run("release", (r) => RELEASE.run(r, [dedupKey(fingerprint)], [token]));
  }

  private record(fingerprint: string, ref: string, base: number, firstSeen: string, cfg: GatewayConfig) {
    const args = [ref, base, firstSeen, cfg.processing.deduplication.ttlMs];
    return this.redis.runConfirmed("record", (r) => RECORD.run(r, [dedupKey(fingerprint)], args)) as Promise<
      string[] | null
    >;
  }

  private redisClaim(signal: Signal, cfg: GatewayConfig, token: string, seen: Occurrences): Claim {
    const fp = signal.fingerprint;
    return {
      firstSeenAt: seen.firstSeenAt,
      commit: async (rr, adopted) => {
        const ref = refText({ namespace: rr.metadata.namespace, name: rr.metadata.name });
        const existing = adopted ? rr.status?.deduplication : undefined;
        try {
          const reply = await this.record(fp, ref, existing?.occurrenceCount ?? 0, existing?.firstSeenAt ?? "", cfg);
          if (!reply) return seen;
          const result = toOccurrences(reply[1], reply[2], reply[3]);
          if (reply[0] !== ref)
            this.log.warn(
              { ref, recorded: reply[0] },
              "another gateway recorded a different request for this fingerprint",
            );
          if (adopted || result.occurrenceCount > 1) this.flusher.touch(dedupKey(fp));
          return result;
        } catch (err) {
          // The request exists; an unrecorded claim expires and the next claimer adopts the request.
          this.log.warn({ ref, err: (err as Error).message }, "could not record the RemediationRequest in Redis");
          return seen;
        }
      },
      foldIntoStorm: async (windowId) => {
        await this.record(fp, `${STORM_REF_PREFIX}${windowId}`, 0, "", cfg);
      },
      release: async () => {
        await this.release(fp, token).catch((err) =>
          this.log.warn({ err: (err as Error).message }, "could not release a dedup claim; it expires with its lease"),
        );
      },
    };
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

  private async sightInKubernetes(signal: Signal, namespace: string): Promise<Sighting> {
    const fp = signal.fingerprint;
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
      return { kind: "new", claim: this.degradedClaim(fp, seenAt, known ?? [], unlock) };
    } finally {
      if (!handedOver) unlock();
    }
  }

  private async listOrFail(namespace: string, fingerprint: string): Promise<RemediationRequestObject[]> {
    try {
      return await this.kube.listByFingerprint(namespace, fingerprint);
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

  private degradedClaim(fp: string, seenAt: string, known: RemediationRequestObject[], unlock: () => void): Claim {
    const initial: Occurrences = { occurrenceCount: 1, firstSeenAt: seenAt, lastSeenAt: seenAt };
    return {
      firstSeenAt: seenAt,
      known,
      commit: async (rr, adopted) => {
        this.remember(fp, rr);
        unlock();
        if (!adopted) return initial;
        const { ref: _, ...occurrences } = this.countWithoutRedis(rr, fp, seenAt);
        return occurrences;
      },
      foldIntoStorm: async () => unlock(),
      release: async () => unlock(),
    };
  }
}
