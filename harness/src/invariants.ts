import type { StartedDataStorageService } from "./components/data-storage.js";
import type { StartedKubeApiServer } from "./components/kube-api.js";
import type { StartedPrometheusServer } from "./components/prometheus.js";
import type { StartedRedisServer } from "./components/redis.js";
import type { StartedRedisSentinelGroup } from "./components/redis-sentinel.js";
import { type SettleOptions, untilSettled } from "./poll.js";

/** One invariant checked against real state: what was expected, what was seen. */
export interface Check {
  name: string;
  expected: number | string;
  observed: number | string;
  ok: boolean;
}

/** What the traffic generator saw: signals (alerts) per outcome, counted from 2xx answers only. */
export interface GeneratorCounts {
  created: number;
  duplicate: number;
  stormAggregated: number;
  /**
   * Signals sent without any answer (timeouts, connection errors). The gateway
   * may have processed them, so the real state may be ahead by at most this.
   */
  unanswered?: number;
  /** 2xx signals per fingerprint, when the generator knows them: a shortfall names the fingerprints short. */
  byFingerprint?: Map<string, number>;
}

export interface RemediationRequest {
  metadata: { name: string; namespace: string; labels?: Record<string, string> };
  spec: { signalFingerprint: string; isStorm?: boolean; stormAlertCount?: number };
  status?: { overallPhase?: string; deduplication?: { occurrenceCount?: number } };
}

const TERMINAL = new Set(["Completed", "Failed", "TimedOut", "Skipped", "Cancelled"]);
const DEDUP_KEYS = "gateway:dedup:fingerprint:*";

/** Every RemediationRequest in the cluster (all namespaces). */
export async function remediationRequests(kube: StartedKubeApiServer): Promise<RemediationRequest[]> {
  const list = (await kube.clients().custom.listClusterCustomObject({
    group: "kubernaut.ai",
    version: "v1alpha1",
    plural: "remediationrequests",
  })) as { items: RemediationRequest[] };
  return list.items;
}

/** D1: at most one non-terminal RemediationRequest per fingerprint. */
export function checkD1(rrs: RemediationRequest[]): Check {
  const open = new Map<string, number>();
  for (const rr of rrs) {
    if (TERMINAL.has(rr.status?.overallPhase ?? "Pending")) continue;
    open.set(rr.spec.signalFingerprint, (open.get(rr.spec.signalFingerprint) ?? 0) + 1);
  }
  const doubled = [...open.entries()].filter(([, n]) => n > 1);
  return {
    name: "D1: at most one non-terminal RemediationRequest per fingerprint",
    expected: "0 fingerprints with more than one",
    observed:
      doubled.length === 0
        ? "0 fingerprints with more than one"
        : `${doubled.length}, e.g. ${doubled[0]?.[0]} x${doubled[0]?.[1]}`,
    ok: doubled.length === 0,
  };
}

/** Exact, or within [expected, expected + slack] where unanswered requests may have been processed. */
function count(name: string, expected: number, observed: number, slack = 0): Check {
  return {
    name,
    expected: slack > 0 ? `${expected}..${expected + slack}` : expected,
    observed,
    ok: observed >= expected && observed <= expected + slack,
  };
}

/**
 * RemediationRequests nobody finished: no status at all. The gateway writes a status to every
 * request it answers for; one without is the API server's work after the gateway gave up on
 * its call and answered 503/504, for a signal not sent again since (a sender that retries, like
 * Alertmanager, has the next sighting finish it). So they are bounded by those answers, and the
 * "created" counts hold for the finished ones.
 */
function unfinished(rrs: RemediationRequest[], slack: number): { finished: number; check: Check } {
  const open = rrs.filter((rr) => rr.status?.deduplication === undefined).length;
  return {
    finished: rrs.length - open,
    check: {
      name: "unfinished RemediationRequests (made after the gateway gave up, not sent again) <= signals answered non-2xx or not at all",
      expected: `<= ${slack}`,
      observed: open,
      ok: open <= slack,
    },
  };
}

/** At least `expected`: nothing lost, more allowed. */
function atLeast(name: string, expected: number, observed: number): Check {
  return { name, expected: `>= ${expected}`, observed, ok: observed >= expected };
}

/**
 * D2 per fingerprint, where the generator counted per fingerprint: no fingerprint's requests
 * hold fewer occurrences than the 2xx it got (an over-count elsewhere cannot hide a loss). The
 * fingerprints short are named, the largest shortfall first, with their Redis hash's count,
 * which tells a count Redis lost from one never written to the request.
 */
async function perFingerprint(
  rrs: RemediationRequest[],
  seen: GeneratorCounts,
  redis: StartedRedisServer | StartedRedisSentinelGroup,
): Promise<Check[]> {
  if (!seen.byFingerprint) return [];
  const counted = new Map<string, number>();
  for (const rr of rrs) {
    const fp = rr.spec.signalFingerprint;
    counted.set(fp, (counted.get(fp) ?? 0) + (rr.status?.deduplication?.occurrenceCount ?? 0));
  }
  const short = [...seen.byFingerprint]
    .map(([fp, answered]) => ({ fp, answered, counted: counted.get(fp) ?? 0 }))
    .filter((s) => s.counted < s.answered)
    .sort((a, b) => b.answered - b.counted - (a.answered - a.counted));
  const check: Check = {
    name: "D2 per fingerprint: no fingerprint counted fewer occurrences than its signals answered 2xx",
    expected: `0 of ${seen.byFingerprint.size} fingerprints short`,
    observed: "0 short",
    ok: short.length === 0,
  };
  if (short.length === 0) return [check];
  const inRedis = (await redisOccurrences(redis)).byFingerprint;
  const shown = short
    .slice(0, 5)
    .map(
      (s) => `${s.fp.slice(0, 16)} answered ${s.answered}, counted ${s.counted}, Redis ${inRedis.get(s.fp) ?? "none"}`,
    );
  return [{ ...check, observed: `${short.length} short: ${shown.join("; ")}` }];
}

/** Sum of the `count` field over all deduplication hashes in Redis. */
async function redisOccurrences(
  redis: StartedRedisServer | StartedRedisSentinelGroup,
): Promise<{ keys: number; sum: number; byFingerprint: Map<string, number> }> {
  const client = redis.client();
  try {
    let sum = 0;
    const byFingerprint = new Map<string, number>();
    let cursor = "0";
    do {
      const [next, batch] = await client.scan(cursor, "MATCH", DEDUP_KEYS, "COUNT", 1000);
      cursor = next;
      const pipeline = client.pipeline();
      for (const key of batch) pipeline.hget(key, "count");
      const values = (await pipeline.exec()) ?? [];
      batch.forEach((key, i) => {
        const value = Number(values[i]?.[1] ?? 0);
        byFingerprint.set(key.slice(DEDUP_KEYS.length - 1), value);
        sum += value;
      });
    } while (cursor !== "0");
    return { keys: byFingerprint.size, sum, byFingerprint };
  } finally {
    client.disconnect();
  }
}

async function promSum(prometheus: StartedPrometheusServer, metric: string): Promise<number> {
  const result = await prometheus.query(`sum(${metric})`);
  return result[0]?.value ?? 0;
}

export interface AccountingTargets {
  kube: StartedKubeApiServer;
  redis: StartedRedisServer | StartedRedisSentinelGroup;
  dataStorage: StartedDataStorageService;
  prometheus: StartedPrometheusServer;
}

/**
 * Reconciles every 2xx the generator saw against the real state: the
 * RemediationRequests and their occurrence counts (D1, D2, D3), Redis, the
 * audit trail in Data Storage, and the gateway's counters as scraped by a real
 * Prometheus. Coalesced status writes, the audit buffer and scrapes are
 * asynchronous and drain at a pace set by the run (a heavy run leaves
 * thousands of counts to write), so it polls while the state keeps moving,
 * gives up once it stalls (or at the hard bound), and returns what it last saw.
 */
export async function reconcile(
  targets: AccountingTargets,
  seen: GeneratorCounts,
  settle: SettleOptions = { stallMs: 30_000, maxMs: 600_000 },
  mode: "exact" | "no-loss" = "exact",
): Promise<Check[]> {
  const signals = seen.created + seen.duplicate + seen.stormAggregated;
  const slack = seen.unanswered ?? 0;
  if (mode === "no-loss")
    return untilSettled(
      () => noLoss(targets, seen),
      (checks) => checks.every((c) => c.ok),
      settle,
    );
  const gather = async (): Promise<Check[]> => {
    const rrs = await remediationRequests(targets.kube);
    const storms = rrs.filter((rr) => rr.spec.isStorm);
    const occurrences = rrs.reduce((sum, rr) => sum + (rr.status?.deduplication?.occurrenceCount ?? 0), 0);
    const redis = await redisOccurrences(targets.redis);
    const audit = await targets.dataStorage.stats();
    const byType = (type: string) => audit.by_type[type] ?? 0;
    const { finished, check: unfinishedCheck } = unfinished(rrs, slack);
    return [
      checkD1(rrs),
      unfinishedCheck,
      count(
        "RemediationRequests created for new signals (non-storm) = signals answered 'created'",
        seen.created,
        rrs.length - storms.length,
        slack,
      ),
      count("D2/D3: sum of status.deduplication.occurrenceCount = signals answered 2xx", signals, occurrences, slack),
      ...(await perFingerprint(rrs, seen, targets.redis)),
      count("Redis: sum of dedup hash counts = signals answered 2xx", signals, redis.sum, slack),
      count(
        "audit: gateway.signal.received events = signals answered 2xx",
        signals,
        byType("gateway.signal.received"),
        slack,
      ),
      count(
        "audit: gateway.crd.created events = RemediationRequests (finished)",
        finished,
        byType("gateway.crd.created"),
      ),
      count(
        "audit: gateway.signal.deduplicated events = signals answered 'duplicate'",
        seen.duplicate,
        byType("gateway.signal.deduplicated"),
        slack,
      ),
      count(
        "gateway_alerts_deduplicated_total (Prometheus) = signals answered 'duplicate'",
        seen.duplicate,
        await promSum(targets.prometheus, "gateway_alerts_deduplicated_total"),
        slack,
      ),
      count(
        "gateway_crd_created_total (Prometheus) = RemediationRequests (finished)",
        finished,
        await promSum(targets.prometheus, "gateway_crd_created_total"),
      ),
    ];
  };
  return untilSettled(gather, (checks) => checks.every((c) => c.ok), settle);
}

/**
 * What a Redis failover must keep: no accepted signal lost and no request created twice. A write
 * the gateway could not confirm on a replica is done again, so an occurrence may count twice
 * (at least, not exactly); Redis is left out, as the Kubernetes API is the record while the
 * gateway deduplicates without Redis.
 */
async function noLoss(targets: AccountingTargets, seen: GeneratorCounts): Promise<Check[]> {
  const signals = seen.created + seen.duplicate + seen.stormAggregated;
  const rrs = await remediationRequests(targets.kube);
  const storms = rrs.filter((rr) => rr.spec.isStorm);
  const occurrences = rrs.reduce((sum, rr) => sum + (rr.status?.deduplication?.occurrenceCount ?? 0), 0);
  const audit = await targets.dataStorage.stats();
  const { finished, check: unfinishedCheck } = unfinished(rrs, seen.unanswered ?? 0);
  return [
    checkD1(rrs),
    unfinishedCheck,
    count(
      "no duplicate requests: RemediationRequests (non-storm) = signals answered 'created'",
      seen.created,
      rrs.length - storms.length,
      seen.unanswered ?? 0,
    ),
    atLeast(
      "D2: every 2xx is a counted occurrence (sum of status.deduplication.occurrenceCount)",
      signals,
      occurrences,
    ),
    ...(await perFingerprint(rrs, seen, targets.redis)),
    atLeast(
      "audit complete: gateway.signal.received events >= signals answered 2xx",
      signals,
      audit.by_type["gateway.signal.received"] ?? 0,
    ),
    count(
      "audit: gateway.crd.created events = RemediationRequests (finished)",
      finished,
      audit.by_type["gateway.crd.created"] ?? 0,
    ),
  ];
}
