// Infrastructure faults: the Redis master killed under load (Sentinel failover), the API server
// and etcd restarted, Data Storage failing, stalling and gone.
import type { Experiment, Probe, RunParameters } from "../src/experiment.js";
import { gatewayAlive, gatewayReady, redisAvailable, requestsExist } from "./probes.js";

/** Load before the first fault: the baseline is its last 5 s. */
const leadIn = (p: RunParameters) => (p.mode === "full" ? 10_000 : 5_000);

/** The gateway's RemediationRequest index follows the API server (its watch is open), as Prometheus scraped it. */
const indexSynced: Probe = {
  name: "gateway index follows the API server",
  type: "prom",
  mode: "Edge",
  // The last scraped value: a scrape that missed its 1 s timeout on a busy machine leaves no sample.
  query: "min(last_over_time(gateway_rr_index_synced[15s]))",
  comparator: { op: "==", value: 1 },
  runProperties: { timeoutMs: 3_000, intervalMs: 1_000, retries: 15 },
};

/**
 * The Sentinel master SIGKILLed KILLS times under load, replicas resynced between kills. The
 * replication links run through Toxiproxy with latency (a WAIT costs a real round trip), and
 * before each kill the replicas miss the master's last half second of writes, so every kill
 * lands while they are behind: a gateway that answered before the replicas acknowledged a
 * write loses it (the classic asynchronous-replication loss), which D2 per fingerprint catches.
 */
export function redisFailover(p: RunParameters): Experiment {
  const kills = p.kills ?? (p.mode === "full" ? 20 : 3);
  return {
    name: "infra/redis-failover",
    description: `The Sentinel master SIGKILLed ${kills} times under load, with lagging replicas: no accepted signal lost, no duplicate request, the gateway never restarted.`,
    // Replication alone through Toxiproxy: at 1000/s proxies on every link took 26-36 % of a core
    // on a machine left no idle time (README, "Chaos"); the load goes to the gateway directly.
    stack: { redis: "sentinel", replicationLatencyMs: 20, links: ["replication"] },
    load: { rate: p.rate ?? 1000, leadInMs: leadIn(p) },
    probes: [gatewayReady, gatewayAlive, redisAvailable, requestsExist],
    faults: [
      {
        name: "kill the Redis master",
        action: { kind: "kill-redis-master", waitForResync: true, replicasMissMs: 500 },
        // Long enough for the sentinels to notice (down-after 1.5 s) and promote a replica.
        durationMs: 6_000,
        afterMs: 2_000,
        repeat: kills,
      },
    ],
    invariants: [
      { kind: "gateway-not-restarted" },
      { kind: "recovers-within", ms: 30_000 },
      { kind: "accounting", mode: "no-loss" },
    ],
  };
}

/**
 * kube-apiserver stopped and started again, then etcd stopped and started again, under load.
 * New signals get 503 while the API server cannot write (duplicates are answered from Redis);
 * afterwards the gateway must get back on its own: its RemediationRequest index re-watches (or
 * re-lists) and creations succeed again, without a restart and without losing an accepted signal.
 * `--duration` is how long each of the two stays down.
 */
export function kubeRestart(p: RunParameters): Experiment {
  const downMs = p.durationMs ?? (p.mode === "full" ? 30_000 : 3_000);
  // After an API server restart the index's first re-watch gets 410 (the new watch cache starts
  // after its resourceVersion). A gateway that took that for a failure backed off before relisting
  // (resync measured 10.5-26 s); relisting at once, it resyncs within its backoff of at most 10 s
  // for the outage itself (6.2 s measured).
  const resyncMs = 15_000;
  return {
    name: "infra/kube-restart",
    description: `kube-apiserver stopped for ${downMs / 1000} s and started again, then etcd the same, under load: no accepted signal lost, the gateway's index resyncs and creations succeed again without a restart.`,
    stack: { redis: "single" },
    load: { rate: p.rate ?? 200, leadInMs: leadIn(p) },
    probes: [gatewayReady, gatewayAlive, requestsExist, indexSynced],
    faults: [
      { name: "stop kube-apiserver", action: { kind: "stop-kube-apiserver" }, durationMs: downMs },
      // After the first recovery is measured, so the two resyncs are told apart.
      { name: "restart etcd", action: { kind: "restart-etcd" }, durationMs: downMs, afterMs: resyncMs },
    ],
    invariants: [
      { kind: "answers", allowed: [201, 202, 207, 503, 504], retryAfter: [503] },
      { kind: "gateway-not-restarted" },
      { kind: "kube-resync", ms: resyncMs },
      { kind: "recovers-within", ms: 30_000 },
      { kind: "accounting" },
    ],
  };
}

/**
 * Data Storage answering 503, then stalling every write, then SIGKILLed (and started again),
 * one third of DURATION each (`--duration`; 18 s in ci mode, 10 min in full mode). Audit must
 * never be in a signal's way: latency stays near the baseline, the events wait in memory and the
 * on-disk journal (a small memory buffer, so the journal is used within seconds), and after
 * recovery every one of them reaches Data Storage, in order.
 */
export function dataStorageOutage(p: RunParameters): Experiment {
  const totalMs = p.durationMs ?? (p.mode === "full" ? 600_000 : 18_000);
  if (totalMs < 3_000) throw new Error(`duration: the outage needs at least 3s, 1s per phase (got: ${totalMs} ms)`);
  const phaseMs = Math.round(totalMs / 3);
  const phase = (mode: "fail" | "stall" | "kill", name: string) => ({
    name,
    action: { kind: "data-storage" as const, mode },
    durationMs: phaseMs,
  });
  return {
    name: "infra/datastorage-outage",
    description: `Data Storage answering 503, stalling, then killed, ${phaseMs / 1000} s each: signal latency near the baseline, audit journaled meanwhile, every event delivered in order afterwards.`,
    // 2000 events in memory (about 5 s of this load) before the journal takes them.
    stack: { redis: "single", gateway: { dataStorage: { bufferSize: 2000 } } },
    load: { rate: p.rate ?? 200, leadInMs: leadIn(p) },
    probes: [gatewayReady, gatewayAlive, requestsExist],
    faults: [
      phase("fail", "Data Storage answers 503"),
      phase("stall", "Data Storage stalls every write"),
      phase("kill", "Data Storage killed"),
    ],
    invariants: [
      // The outage's windows only: the warm-up's burst of creations may time out on a busy machine.
      { kind: "answers", allowed: [201, 202, 207], includeUnanswered: true, during: "fault" },
      { kind: "latency-near-baseline", factor: 2, slackMs: 50 },
      { kind: "audit-journaled" },
      { kind: "accounting" },
      { kind: "audit-delivered" },
    ],
  };
}

export const infra: Record<string, (p: RunParameters) => Experiment> = {
  "infra/redis-failover": redisFailover,
  "infra/kube-restart": kubeRestart,
  "infra/datastorage-outage": dataStorageOutage,
};
