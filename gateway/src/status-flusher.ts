import { ADD_COUNT, MARK_FLUSHED } from "./dedup-scripts.js";
import { KubeApiError, type KubeClient } from "./kube.js";
import type { Log } from "./log.js";
import type { Metrics } from "./metrics.js";
import { Periodic } from "./periodic.js";
import type { RedisLink } from "./redis-link.js";
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

/** Parallel status writes per pass: enough to keep up, few enough not to swamp the API server. */
const CONCURRENCY = 32;

async function eachLimited<T>(items: T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await work(items[next++] as T);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

interface PendingDelta {
  ref: RRRef;
  countKey: string;
  delta: number;
  firstSeenAt: string;
  lastSeenAt: string;
}

/**
 * Coalesced `status.deduplication` writes (D3). Duplicates only mark what
 * changed; every flush interval each touched request gets one merge-patch.
 * - Normally the count comes from the Redis hash (authoritative, shared by
 *   replicas), so whatever replica writes last, the value converges; a write
 *   that lost a race against a higher one is detected and redone.
 * - While Redis is unreachable, duplicates are counted here and added to the
 *   request's current status (read, then a resourceVersion-guarded patch);
 *   when Redis is back, the same amounts are added to the hashes.
 */
export class StatusFlusher {
  private readonly touched = new Set<string>();
  private readonly deltas = new Map<string, PendingDelta>();
  /** Counts written to status while Redis was down, still to be added to the hashes. */
  private readonly debts = new Map<string, { ref: string; delta: number }>();
  private readonly loop: Periodic;

  constructor(
    private readonly redis: RedisLink,
    private readonly kube: KubeClient,
    private readonly metrics: Metrics,
    private readonly log: Log,
    config: () => GatewayConfig,
  ) {
    redis.onRecovery(() => this.settleDebts());
    this.loop = new Periodic(
      () => config().processing.deduplication.statusFlushIntervalMs,
      () => this.flush(),
    );
  }

  start(): void {
    this.loop.start();
  }

  /** The Redis hash `countKey` changed; its request's status is due for a write. */
  touch(countKey: string): void {
    this.touched.add(countKey);
  }

  /** Occurrences counted without Redis (degraded mode), added to the request's status. */
  addOccurrences(ref: RRRef, countKey: string, seenAt: string, count = 1): void {
    const key = refText(ref);
    const pending = this.deltas.get(key);
    if (pending) {
      pending.delta += count;
      pending.lastSeenAt = seenAt;
    } else {
      this.deltas.set(key, { ref, countKey, delta: count, firstSeenAt: seenAt, lastSeenAt: seenAt });
    }
  }

  /** Occurrences counted in memory and not yet written (for degraded-mode answers). */
  pendingOccurrences(ref: RRRef): number {
    return this.deltas.get(refText(ref))?.delta ?? 0;
  }

  async flush(): Promise<void> {
    if (!this.kube.healthy()) return; // keep everything for the next pass
    await this.flushDeltas();
    if (this.debts.size > 0 && this.redis.available()) {
      await this.redis.run("settle", () => this.settleDebts()).catch(() => {});
    }
    await this.flushTouched();
  }

  async close(): Promise<void> {
    await this.loop.stop();
    await this.flush().catch((err) => this.log.warn({ err: (err as Error).message }, "final status flush failed"));
  }

  private async flushTouched(): Promise<void> {
    if (this.touched.size === 0 || !this.redis.available()) return;
    const keys = [...this.touched];
    this.touched.clear();
    let rows: [Error | null, unknown][] | null;
    try {
      rows = await this.redis.run("status-read", (r) => {
        const batch = r.pipeline();
        for (const key of keys) batch.hmget(key, "count", "firstSeen", "lastSeen", "remediationRequestRef");
        return batch.exec();
      });
    } catch {
      for (const key of keys) this.touch(key);
      return;
    }
    const entries: { key: string; fields: (string | null)[] }[] = [];
    keys.forEach((key, i) => {
      // exec() reports failures per command (e.g. the connection died mid-batch): those keys wait for the next pass.
      const [err, fields] = rows?.[i] ?? [new Error("no reply"), null];
      if (err) this.touch(key);
      else entries.push({ key, fields: fields as (string | null)[] });
    });
    await eachLimited(entries, CONCURRENCY, async ({ key, fields }) => {
      const [count, firstSeenAt, lastSeenAt, refField] = fields;
      const ref = parseRef(refField);
      const occurrenceCount = Number(count);
      if (!ref || !firstSeenAt || !lastSeenAt || !(occurrenceCount >= 1)) return; // expired or not created yet
      try {
        await this.kube.patchStatus(ref.namespace, ref.name, {
          deduplication: { occurrenceCount, firstSeenAt, lastSeenAt },
        });
        this.metrics.dedupStatusUpdates.inc({ result: "success" });
        const fresh = await this.redis.run("status-mark", (r) => MARK_FLUSHED.run(r, [key], [occurrenceCount]));
        if (fresh === 0) this.touch(key);
      } catch (err) {
        this.failed(err, refText(ref));
        if (!(err instanceof KubeApiError && err.reason === "not_found")) this.touch(key);
      }
    });
  }

  private async flushDeltas(): Promise<void> {
    if (this.deltas.size === 0) return;
    const pending = [...this.deltas.values()];
    this.deltas.clear();
    await eachLimited(pending, CONCURRENCY, async (entry) => {
      const { ref } = entry;
      try {
        const rr = await this.kube.getRemediationRequest(ref.namespace, ref.name);
        if (!rr) return;
        const current = rr.status?.deduplication;
        const lastSeenAt = current && current.lastSeenAt > entry.lastSeenAt ? current.lastSeenAt : entry.lastSeenAt;
        await this.kube.patchStatus(
          ref.namespace,
          ref.name,
          {
            deduplication: {
              occurrenceCount: (current?.occurrenceCount ?? 1) + entry.delta,
              firstSeenAt: current?.firstSeenAt ?? entry.firstSeenAt,
              lastSeenAt,
            },
          },
          rr.metadata.resourceVersion,
        );
        this.metrics.dedupStatusUpdates.inc({ result: "success" });
        const debt = this.debts.get(entry.countKey);
        this.debts.set(entry.countKey, { ref: refText(ref), delta: (debt?.delta ?? 0) + entry.delta });
      } catch (err) {
        this.failed(err, refText(ref));
        this.restoreDelta(entry);
      }
    });
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
   * degraded counts flushed late; throwing leaves the rest for later.
   */
  private async settleDebts(): Promise<void> {
    for (const [countKey, debt] of this.debts) {
      await ADD_COUNT.run(this.redis.client, [countKey], [debt.ref, debt.delta]);
      this.debts.delete(countKey);
      this.touch(countKey);
    }
  }
}
