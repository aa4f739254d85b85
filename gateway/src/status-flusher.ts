import { ADD_COUNT, isDedupKey, tokenSource } from "./dedup-scripts.js";
import { KubeApiError, type KubeClient } from "./kube.js";
import type { Log } from "./log.js";
import type { Metrics } from "./metrics.js";
import type { RedisLink } from "./redis-link.js";
import type { DeduplicationStatus, RemediationRequestObject } from "./remediation-request.js";
import type { GatewayConfig } from "./types.js";

/** A RemediationRequest, as recorded in Redis: "namespace/name". */
export interface RRRef {
  namespace: string;
  name: string;
}

export const refText = (ref: RRRef) => `${ref.namespace}/${ref.name}`;

/** "ns/name" → ref; anything else (empty, a storm window marker) → undefined. */
export function parseRef(text: string | null | undefined): RRRef | undefined {
  const match = /^([a-z0-9][a-z0-9.-]*)\/([a-z0-9][a-z0-9.-]*)$/.exec(text ?? "");
  return match ? { namespace: match[1] as string, name: match[2] as string } : undefined;
}

/** Status writes in flight at once: the budget sets the rate; this bounds the queue at a slow API server. */
const WRITE_CONCURRENCY = 8;
/** On shutdown, outside the budget: a busy API server serves them side by side. */
const DRAIN_CONCURRENCY = 32;
/**
 * On shutdown the backlog is written for at most this long, DRAIN_CONCURRENCY at a time and
 * outside the budget: a count not written now waits for the signal's next sighting, which
 * may never come (D3).
 */
const CLOSE_DRAIN_MS = 10_000;

interface Debt {
  countKey: string;
  ref: string;
  delta: number;
  inStatus: number;
  firstSeenAt: string;
  lastSeenAt: string;
}

interface PendingDelta {
  ref: RRRef;
  countKey: string;
  delta: number;
  firstSeenAt: string;
  lastSeenAt: string;
  /** When the first occurrence not yet written was counted (ms). */
  since: number;
}

/** The oldest entry of an insertion-ordered map. */
function oldest<K, V>(map: Map<K, V>): [K, V] | undefined {
  return map.entries().next().value;
}

/**
 * Coalesced `status.deduplication` writes (D3). Duplicates only mark what
 * changed; a pump writes the marked requests oldest change first, each once
 * its change is `statusFlushInterval` old (so a busy request is written once
 * per interval, not per duplicate), paced to `statusWriteRate` writes per
 * second. That budget covers creations too: count writes get what creations
 * (the latency-critical writes) leave of it, at least a fifth. A request
 * marked again keeps its place and is written with its latest count: every
 * one is written, none is queued twice (the backlog is bounded by the active
 * fingerprints), and the API server sees a steady, bounded load. Counts
 * converge within the interval at normal load and within backlog / rate
 * seconds once creations calm down (gateway_dedup_status_backlog).
 * - Normally the count comes from the Redis hash (authoritative, shared by
 *   replicas), so whatever replica writes last, the value converges; a count
 *   that moved while it was written is written again.
 * - While Redis is unreachable, duplicates are counted here and added to the
 *   request's current status (read, then a resourceVersion-guarded patch);
 *   when Redis is back, the same amounts are added to the hashes.
 */
export class StatusFlusher {
  /** Redis keys due for a write → when first marked since their last write (insertion order = oldest first). */
  private readonly touched = new Map<string, number>();
  private readonly deltas = new Map<string, PendingDelta>();
  /** Requests ("ns/name") whose degraded-mode counts are being written now: how many writes. */
  private readonly writingDeltas = new Map<string, number>();
  /**
   * Counts written to status while Redis was down, still to be added to the hashes, by a
   * unique id: an addition whose answer was lost is redone with its id and not counted twice.
   * `inStatus` is the count the write left in status: an adopter that read it or more has them.
   * A request created without Redis owes its first count too: with no hash to add to, the hash
   * is made from the status (ADD_COUNT "restored"), else Redis would never hear of a request
   * whose signal is not seen again.
   */
  private readonly debts = new Map<string, Debt>();
  private readonly nextDebtId = tokenSource();
  private readonly writing = new Set<Promise<void>>();
  /** First status writes of requests just created, by key: later writes of the key wait for them (order). */
  private readonly initialWrites = new Map<string, Promise<void>>();
  private tokens = 0;
  private refilledAt = performance.now();
  /** The creations' API writes per second (a create and its first status each), decaying with a 1 s time constant. */
  private creationLoad = 0;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private settling = false;

  constructor(
    private readonly redis: RedisLink,
    private readonly kube: KubeClient,
    private readonly metrics: Metrics,
    private readonly log: Log,
    private readonly config: () => GatewayConfig,
  ) {}

  start(): void {
    this.schedule(0);
  }

  /** The Redis hash `countKey` changed; its request's status is due for a write. */
  touch(countKey: string): void {
    if (!this.touched.has(countKey)) this.touched.set(countKey, Date.now());
  }

  /**
   * A request was just created: its first status (phase Pending and its
   * count) is written now, outside the budget and off the creator's answer.
   * Guarded by the creation's resourceVersion, so it never overwrites what
   * someone wrote first (an orchestrator's phase); then the regular write
   * brings the count. Later writes of `countKey` wait for this one. A request
   * created without Redis (`owedToRedis`) then owes the hash its count.
   * Returns the write (it never rejects).
   */
  initial(
    countKey: string,
    rr: RemediationRequestObject,
    deduplication: DeduplicationStatus,
    owedToRedis = false,
  ): Promise<void> {
    const { namespace, name, resourceVersion } = rr.metadata;
    this.creationLoad += 2; // the create and this write
    const write: Promise<void> = this.kube
      .patchStatus(namespace, name, { overallPhase: "Pending", deduplication }, resourceVersion)
      .then(
        () => {
          this.metrics.dedupStatusUpdates.inc({ result: "success" });
          if (owedToRedis)
            this.debts.set(this.nextDebtId(), {
              countKey,
              ref: refText({ namespace, name }),
              delta: deduplication.occurrenceCount,
              inStatus: deduplication.occurrenceCount,
              firstSeenAt: deduplication.firstSeenAt,
              lastSeenAt: deduplication.lastSeenAt,
            });
        },
        (err) => {
          this.failed(err, `${namespace}/${name}`);
          this.touch(countKey);
        },
      )
      .finally(() => {
        if (this.initialWrites.get(countKey) === write) this.initialWrites.delete(countKey);
      });
    this.initialWrites.set(countKey, write);
    return write;
  }

  /** Occurrences counted without Redis (degraded mode), added to the request's status. */
  addOccurrences(ref: RRRef, countKey: string, seenAt: string, count = 1): void {
    const key = refText(ref);
    const pending = this.deltas.get(key);
    if (pending) {
      pending.delta += count;
      pending.lastSeenAt = seenAt;
    } else {
      this.deltas.set(key, { ref, countKey, delta: count, firstSeenAt: seenAt, lastSeenAt: seenAt, since: Date.now() });
    }
  }

  /** Occurrences counted in memory and not yet written (for degraded-mode answers). */
  pendingOccurrences(ref: RRRef): number {
    return this.deltas.get(refText(ref))?.delta ?? 0;
  }

  /** Requests waiting for their status write. */
  backlog(): number {
    return this.touched.size + this.deltas.size;
  }

  /** Stops the pump and writes what it can of the backlog within CLOSE_DRAIN_MS. */
  async close(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await Promise.all(this.initialWrites.values());
    const until = Date.now() + CLOSE_DRAIN_MS;
    for (;;) {
      this.pump(Number.POSITIVE_INFINITY, true);
      if (this.writing.size === 0) break; // nothing left that can be written now
      await Promise.race(this.writing);
      if (!this.kube.healthy() || Date.now() >= until) break;
    }
    await Promise.all(this.writing);
    if (this.backlog() > 0)
      this.log.warn(
        { backlog: this.backlog() },
        "status.deduplication writes left for the next sighting of each signal",
      );
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => this.tick(), ms);
    this.timer.unref();
  }

  private tick(): void {
    const { statusWriteRate, statusFlushIntervalMs } = this.config().processing.deduplication;
    this.pump(Date.now() - statusFlushIntervalMs);
    if (this.debts.size > 0 && !this.settling && this.redis.available()) {
      this.settling = true;
      void this.settleDebts()
        .catch(() => {})
        .finally(() => {
          this.settling = false;
        });
    }
    this.metrics.dedupStatusBacklog.set(this.backlog());
    // While anything waits, tick at the write rate; otherwise once per interval.
    this.schedule(this.backlog() > 0 ? Math.max(5, 1000 / statusWriteRate) : statusFlushIntervalMs);
  }

  /** Starts the writes that are due (marked before `markedBefore`) and fit the budget (unless `draining`). */
  private pump(markedBefore: number, draining = false): void {
    const { statusWriteRate } = this.config().processing.deduplication;
    const now = performance.now();
    const elapsedMs = now - this.refilledAt;
    this.creationLoad *= Math.exp(-elapsedMs / 1000);
    // The budget covers all writes: count writes get what creations leave of it (at least a fifth).
    const rate = Math.max(statusWriteRate / 5, statusWriteRate - this.creationLoad);
    // At most a tenth of a second's worth saved up: a quiet spell never turns into a burst.
    this.tokens = Math.min(Math.max(1, rate / 10), this.tokens + (rate * elapsedMs) / 1000);
    this.refilledAt = now;
    if (!this.kube.healthy()) return; // keep everything until the API server answers again
    while ((draining || this.tokens >= 1) && this.writing.size < (draining ? DRAIN_CONCURRENCY : WRITE_CONCURRENCY)) {
      const write = this.nextDue(markedBefore);
      if (!write) return;
      if (!draining) this.tokens--;
      const running: Promise<void> = write().finally(() => this.writing.delete(running));
      this.writing.add(running);
    }
  }

  /** The oldest due write: degraded-mode counts first, then Redis-backed counts. */
  private nextDue(markedBefore: number): (() => Promise<void>) | undefined {
    const delta = oldest(this.deltas);
    if (delta && delta[1].since <= markedBefore) {
      this.deltas.delete(delta[0]);
      return () => this.writeDelta(delta[1]);
    }
    const marked = oldest(this.touched);
    if (marked && marked[1] <= markedBefore && this.redis.available()) {
      this.touched.delete(marked[0]);
      return () => this.writeCount(marked[0]);
    }
    return undefined;
  }

  /** Writes the hash's count to its request; a count that moved meanwhile (a sighting, another replica) is queued again. */
  private async writeCount(key: string): Promise<void> {
    await this.initialWrites.get(key);
    let fields: (string | null)[];
    try {
      fields = await this.redis.run("status-read", (r) =>
        r.hmget(key, "count", "firstSeen", "lastSeen", "remediationRequestRef"),
      );
    } catch {
      this.touch(key);
      return;
    }
    const [count, firstSeenAt, lastSeenAt, refField] = fields;
    const ref = parseRef(refField);
    const occurrenceCount = Number(count);
    if (!ref || !firstSeenAt || !lastSeenAt || !(occurrenceCount >= 1)) return; // expired or not created yet
    try {
      await this.kube.patchStatus(ref.namespace, ref.name, {
        deduplication: { occurrenceCount, firstSeenAt, lastSeenAt },
      });
      this.metrics.dedupStatusUpdates.inc({ result: "success" });
    } catch (err) {
      this.failed(err, refText(ref));
      if (!(err instanceof KubeApiError && err.reason === "not_found")) this.touch(key);
      return;
    }
    const current = await this.redis.run("status-check", (r) => r.hget(key, "count")).catch(() => null);
    if (current !== null && Number(current) !== occurrenceCount) this.touch(key);
  }

  /** Degraded mode: adds the counted occurrences to what the request's status holds now. */
  private async writeDelta(entry: PendingDelta): Promise<void> {
    const { ref } = entry;
    const key = refText(ref);
    this.writingDeltas.set(key, (this.writingDeltas.get(key) ?? 0) + 1);
    await this.initialWrites.get(entry.countKey);
    try {
      const rr = await this.kube.getRemediationRequest(ref.namespace, ref.name);
      if (!rr) return;
      const current = rr.status?.deduplication;
      const lastSeenAt = current && current.lastSeenAt > entry.lastSeenAt ? current.lastSeenAt : entry.lastSeenAt;
      const occurrenceCount = (current?.occurrenceCount ?? 1) + entry.delta;
      const firstSeenAt = current?.firstSeenAt ?? entry.firstSeenAt;
      await this.kube.patchStatus(
        ref.namespace,
        ref.name,
        { deduplication: { occurrenceCount, firstSeenAt, lastSeenAt } },
        rr.metadata.resourceVersion,
      );
      this.metrics.dedupStatusUpdates.inc({ result: "success" });
      this.debts.set(this.nextDebtId(), {
        countKey: entry.countKey,
        ref: key,
        delta: entry.delta,
        inStatus: occurrenceCount,
        firstSeenAt,
        lastSeenAt,
      });
    } catch (err) {
      this.failed(err, key);
      this.restoreDelta(entry);
    } finally {
      const left = (this.writingDeltas.get(key) ?? 1) - 1;
      if (left > 0) this.writingDeltas.set(key, left);
      else this.writingDeltas.delete(key);
    }
  }

  private restoreDelta(entry: PendingDelta): void {
    const key = refText(entry.ref);
    const newer = this.deltas.get(key);
    this.deltas.set(key, newer ? { ...entry, delta: entry.delta + newer.delta, lastSeenAt: newer.lastSeenAt } : entry);
  }

  private failed(err: unknown, ref: string): void {
    this.metrics.dedupStatusUpdates.inc({ result: err instanceof KubeApiError ? err.reason : "error" });
    this.log.debug({ ref, err: (err as Error).message }, "status.deduplication write failed; retried next pass");
  }

  /**
   * Adds counts written to status without Redis to the hashes, so the next
   * Redis-based write includes them (and rewrites any lower value written
   * meanwhile). Runs before Redis counts as available again, and after
   * degraded counts flushed late; throwing leaves the rest for later, and so
   * does a claimer adopting the request right now (ADD_COUNT "later"). The
   * highest count in status goes first: a missing hash is made with it, and
   * the request's lower ones are then included in it.
   */
  async settleDebts(): Promise<void> {
    const due = [...this.debts].sort(([, a], [, b]) => b.inStatus - a.inStatus);
    if (due.length === 0) return;
    const { ttlMs } = this.config().processing.deduplication;
    const outcomes = await this.redis.replay(async (r) => {
      const replies: unknown[] = [];
      for (const [id, debt] of due) {
        const { countKey, ref, delta, inStatus, firstSeenAt, lastSeenAt } = debt;
        const pending = this.deltas.has(ref) || this.writingDeltas.has(ref) || this.initialWrites.has(countKey);
        const missing = !isDedupKey(countKey) ? "" : pending ? "wait" : "restore";
        replies.push(
          await ADD_COUNT.run(r, [countKey], [ref, delta, id, inStatus, missing, firstSeenAt, lastSeenAt, ttlMs]),
        );
      }
      return replies;
    });
    due.forEach(([id, debt], i) => {
      if (outcomes[i] === "later") return;
      this.debts.delete(id);
      this.touch(debt.countKey);
    });
  }
}
