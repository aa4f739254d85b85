// Resource faults: the gateway under a memory limit and a CPU quota, the audit journal's disk full.
import type { Experiment, RunParameters } from "../src/experiment.js";
import { gatewayAlive, gatewayReady, requestsExist } from "./probes.js";

const MiB = 1024 * 1024;

/** How long the fault holds: --duration, else short in ci mode and a minute in full mode. */
const window = (p: RunParameters, ciMs: number) => p.durationMs ?? (p.mode === "full" ? 60_000 : ciMs);

/**
 * The gateway's memory limit in `resources/memory` (a Kubernetes `limits.memory: 320Mi`): idle it
 * uses ~200 MiB resident; Node sizes its heap from the limit (~160 MiB of heap).
 */
export const MEMORY_LIMIT_BYTES = 320 * MiB;
/** The memory burst: notifications per second and (up to) alerts in each, ~190 KB a notification. */
const BURST_GROUPS = 100;
const BURST_ALERTS = 200;
/** Redis latency during the burst: work that waits on a dependency is what piles up in memory. */
const BURST_REDIS_LATENCY_MS = 200;

/**
 * The gateway started inside a cgroup v1 memory limit (memory.limit_in_bytes, as a Kubernetes
 * limit puts it; Node sizes its heap from it, as in a pod), then the burst an incident brings: big
 * Alertmanager group notifications while Redis, loaded too, answers slowly. It sheds with 503
 * instead of taking them all in, stays well under the limit and is not OOM-killed. Measured on
 * the 2-core machine: resident peak ~215 MiB shipped, ~280 MiB without the in-flight bound.
 * `limitBytes` lets a test give it a limit too small to live with.
 */
export function memory(p: RunParameters, limitBytes = MEMORY_LIMIT_BYTES): Experiment {
  const rate = p.rate ?? 200;
  return {
    name: "resources/memory",
    description: `The gateway under a ${Math.round(limitBytes / MiB)} MiB cgroup memory limit, hit by ${BURST_GROUPS}/s Alertmanager notifications of up to ${BURST_ALERTS} alerts each while Redis answers in ${BURST_REDIS_LATENCY_MS} ms: it sheds with 503 + Retry-After instead of taking them in, stays well under the limit and is not OOM-killed.`,
    requires: ["root", "cgroup-v1-memory"],
    stack: {
      redis: "single",
      memoryLimitBytes: limitBytes,
      // The in-flight bound is what keeps a burst from turning into memory: 20 big requests fit.
      gateway: { backpressure: { maxInFlight: 20 } },
    },
    load: { rate, leadInMs: 5_000, via: "direct" },
    probes: [gatewayReady, gatewayAlive, requestsExist],
    faults: [
      {
        name: "burst of big notifications, Redis slow",
        action: {
          kind: "combined",
          actions: [
            {
              kind: "toxic",
              link: "redis",
              toxic: { type: "latency", attributes: { latency: BURST_REDIS_LATENCY_MS, jitter: 0 } },
              reachOpenConnections: false,
            },
            { kind: "burst", rate: BURST_GROUPS, maxInFlight: 2_000, alertsPerRequest: BURST_ALERTS },
          ],
        },
        durationMs: window(p, 10_000),
      },
    ],
    invariants: [
      { kind: "oom-killed", expected: false },
      // Resident memory stays well clear of the limit: a gateway that took the burst in would not.
      { kind: "rss-below", bytes: Math.round(limitBytes * 0.8) },
      { kind: "shed-during-fault", min: 100 },
      { kind: "answers", allowed: [201, 202, 207, 503], retryAfter: [503] },
      { kind: "gateway-not-restarted" },
      { kind: "recovers-within", ms: 30_000 },
    ],
  };
}

/**
 * The gateway throttled by a CFS quota of a quarter core while a burst arrives: it sheds quickly
 * (503/429 with Retry-After), the requests it accepts are answered within a bound, and it recovers
 * once the quota is lifted.
 */
export function cpu(p: RunParameters): Experiment {
  const rate = p.rate ?? 200;
  return {
    name: "resources/cpu",
    description: `The gateway throttled to 0.25 cores (CFS quota) under a burst to ${rate * 2} requests/s: it sheds quickly with 503/429 + Retry-After, accepted answers stay within a bound, and it recovers when the quota is lifted.`,
    requires: ["root", "cgroup-v1-cpu"],
    stack: {
      redis: "single",
      // Sized for a quarter core, as an operator would: few requests at once, shedding on a lagging
      // or always busy loop (under a quota requests wait in the kernel, where the lag does not show).
      gateway: { backpressure: { maxInFlight: 20, maxEventLoopLag: "250ms", maxEventLoopUtilization: 0.9 } },
    },
    load: { rate, leadInMs: 5_000, via: "direct" },
    probes: [gatewayReady, gatewayAlive, requestsExist],
    faults: [
      {
        name: "0.25-core quota under a burst",
        action: {
          kind: "combined",
          actions: [
            { kind: "cpu-quota", cores: 0.25 },
            { kind: "burst", rate, maxInFlight: rate },
          ],
        },
        durationMs: window(p, 8_000),
      },
    ],
    invariants: [
      // The first second: the burst opens its connections and the utilization window fills.
      { kind: "shed-during-fault", min: 100, p99Ms: 1_000, onset: { ms: 1_000, p99Ms: 2_000 } },
      { kind: "accepted-p99", ms: 2_000 },
      { kind: "answers", allowed: [201, 202, 207, 429, 503], retryAfter: [429, 503] },
      { kind: "gateway-not-restarted" },
      { kind: "recovers-within", ms: 20_000 },
    ],
  };
}

/** The audit journal's tmpfs in `resources/disk-full`: room for a few spills, then ENOSPC. */
export const JOURNAL_TMPFS_BYTES = 1 * MiB;

/**
 * Data Storage down while the audit journal sits on a small tmpfs that fills up: signals keep
 * flowing, and every audit event is accounted for, delivered or dropped and counted by reason.
 */
export function diskFull(p: RunParameters): Experiment {
  const rate = p.rate ?? 200;
  return {
    name: "resources/disk-full",
    description: `Data Storage down while the audit journal is on a ${JOURNAL_TMPFS_BYTES / MiB} MiB tmpfs that fills up: signals keep flowing (all 2xx), every audit event is delivered or dropped and counted in gateway_audit_events_dropped_total{reason}, none silently lost.`,
    requires: ["root", "tmpfs"],
    stack: {
      redis: "single",
      journalTmpfsBytes: JOURNAL_TMPFS_BYTES,
      // A small memory buffer spills to the journal within a second or two of the outage.
      gateway: { dataStorage: { bufferSize: 500, batchSize: 500 } },
    },
    load: { rate, leadInMs: 5_000, via: "direct" },
    probes: [gatewayReady, gatewayAlive, requestsExist],
    faults: [
      { name: "Data Storage down", action: { kind: "data-storage", mode: "kill" }, durationMs: window(p, 10_000) },
    ],
    invariants: [
      { kind: "answers", allowed: [201, 202, 207], includeUnanswered: true },
      { kind: "max-latency", ms: 2_000 },
      { kind: "gateway-not-restarted" },
      { kind: "audit-drops-counted", minDropped: 1 },
    ],
  };
}

export const resources: Record<string, (p: RunParameters) => Experiment> = {
  "resources/memory": (p) => memory(p),
  "resources/cpu": cpu,
  "resources/disk-full": diskFull,
};
