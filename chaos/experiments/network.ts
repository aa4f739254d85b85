// Network faults on the links of the stack (Toxiproxy): the Redis link reset and cut mid-reply,
// the Kubernetes API slowed down past the gateway's deadline, webhook bodies corrupted on the way in.
import type { Experiment, Fault, RunParameters } from "../src/experiment.js";
import { gatewayAlive, gatewayReady, redisAvailable, requestsExist } from "./probes.js";

/** Steady load after the warm-up before the first fault, so the faults meet the steady state. */
const LEAD_IN_MS = 5_000;

/** How long each fault stays: short in ci, longer in full, or what --duration says. */
function faultMs(p: RunParameters, ci: number, full: number): number {
  return p.durationMs ?? (p.mode === "full" ? full : ci);
}

/** The gateway's deadline in redis-reset: below the load's 15 s timeout, so every answer is seen. */
const REDIS_RESET_DEADLINE_MS = 10_000;

/**
 * Every Redis answer 3 s late (past the command timeout: the gateway goes on without Redis and
 * creates requests through the Kubernetes API), then the gateway's Redis connection reset at once
 * (every reply answered with a TCP RST), then closed after every few KB of replies: commands that
 * ran in Redis lose their answer, so the gateway retries a write that already happened. It must degrade (Kubernetes as the dedup store)
 * or shed with 503, never count a signal twice or lose one, and come back to Redis by itself.
 */
export function redisReset(p: RunParameters): Experiment {
  const duration = faultMs(p, 6_000, 30_000);
  return {
    name: "network/redis-reset",
    description:
      "Every Redis answer late, then the Redis link reset, then cut mid-reply under load: answers only 2xx or 503 with Retry-After, D1/D2 exact, Redis holding every count again, back by itself.",
    // Whatever the gateway answers, it answers within its deadline (waiting on another creator takes
    // up to 0.8 x the deadline), so "no answer" is a hang.
    stack: { redis: "single", gateway: { server: { requestTimeout: `${REDIS_RESET_DEADLINE_MS}ms` } } },
    load: { rate: p.rate ?? 200, leadInMs: LEAD_IN_MS },
    probes: [gatewayReady, gatewayAlive, redisAvailable, requestsExist],
    faults: [
      {
        // Found with it: requests created meanwhile whose signal was not seen again never got a hash.
        name: "every Redis answer 3 s late (latency)",
        action: {
          kind: "toxic",
          link: "redis",
          toxic: { type: "latency", attributes: { latency: 3_000, jitter: 0 }, stream: "downstream" },
          // Toxiproxy delays the open connections' answers too; a reconnection would only fail the
          // ready check until the toxic is gone.
          reachOpenConnections: false,
        },
        durationMs: duration,
      },
      {
        name: "reset the Redis link (reset_peer)",
        action: {
          kind: "toxic",
          link: "redis",
          // timeout 0: the first reply on a connection resets it, the ready check included.
          toxic: { type: "reset_peer", attributes: { timeout: 0 }, stream: "downstream" },
          reachOpenConnections: true,
        },
        durationMs: duration,
        afterMs: 2_000,
      },
      {
        name: "cut the Redis link mid-reply (limit_data)",
        action: {
          kind: "toxic",
          link: "redis",
          // Above the ready check's INFO reply, so each connection serves a few dozen replies and is
          // then closed in the middle of one: the command ran, its answer is lost.
          toxic: { type: "limit_data", attributes: { bytes: 16_384 }, stream: "downstream" },
          reachOpenConnections: true,
        },
        durationMs: duration,
        afterMs: 2_000,
      },
    ],
    invariants: [
      { kind: "answers", allowed: [201, 202, 207, 503], retryAfter: [503], includeUnanswered: true },
      { kind: "max-latency", ms: REDIS_RESET_DEADLINE_MS + 1_000 },
      { kind: "accounting" },
      { kind: "recovers-within", ms: 30_000 },
      { kind: "gateway-not-restarted" },
    ],
  };
}

/** The gateway's deadline in this experiment, short so that 5 s of API latency crosses it. */
export const KUBE_LATENCY_DEADLINE_MS = 4_000;

/**
 * The API server slowed down by 100 ms, 1 s and 5 s in turn. Below the per-call deadline
 * (kubernetes.requestTimeout 3 s) creations still succeed; at 5 s every call times out, and the
 * request deadline (server.requestTimeout 4 s) must answer 504 (or 503) instead of letting the
 * caller hang through the retries.
 */
export function kubeLatency(p: RunParameters): Experiment {
  const duration = faultMs(p, 6_000, 30_000);
  const name = (ms: number) => `API server latency ${ms >= 1000 ? `${ms / 1000} s` : `${ms} ms`}`;
  const latency = (ms: number): Fault => ({
    name: name(ms),
    action: {
      kind: "toxic",
      link: "kube",
      toxic: { type: "latency", attributes: { latency: ms, jitter: 0 }, stream: "downstream" },
      // Toxiproxy puts a latency toxic into open connections too: the keep-alive pool is slowed as it is.
      reachOpenConnections: false,
    },
    durationMs: duration,
    afterMs: 1_000,
  });
  return {
    name: "network/kube-latency",
    description: `API server latency 100 ms, 1 s, 5 s under load: creations succeed below the deadline, beyond it 504/503 within ${KUBE_LATENCY_DEADLINE_MS / 1000} s + 1 s, never a hang.`,
    stack: {
      redis: "single",
      gateway: {
        server: { requestTimeout: `${KUBE_LATENCY_DEADLINE_MS}ms` },
        kubernetes: { requestTimeout: "3s" },
      },
    },
    load: { rate: p.rate ?? 200, leadInMs: LEAD_IN_MS },
    probes: [gatewayReady, gatewayAlive, requestsExist],
    faults: [latency(100), latency(1_000), latency(5_000)],
    invariants: [
      // Below the per-call deadline the gateway still creates: a new signal's answer is 201.
      { kind: "status-during-fault", fault: name(100), status: 201, min: 1 },
      { kind: "status-during-fault", fault: name(1_000), status: 201, min: 1 },
      { kind: "answers", allowed: [201, 202, 207, 503, 504], retryAfter: [503] },
      { kind: "max-latency", ms: KUBE_LATENCY_DEADLINE_MS + 1_000 },
      { kind: "recovers-within", ms: 30_000 },
      { kind: "accounting" },
      { kind: "gateway-not-restarted" },
    ],
  };
}

/**
 * A sender beside the load posting corrupted webhooks through the ingress link: cut short (and
 * cut on the wire by limit_data), garbled bytes arriving in slices, valid JSON of the wrong shape.
 * The valid load goes straight to the gateway, so the ingress toxics only meet the corrupt sender.
 */
export function payloadCorruption(p: RunParameters): Experiment {
  const duration = faultMs(p, 6_000, 30_000);
  const rate = 20;
  return {
    name: "network/payload-corruption",
    description:
      "Truncated, sliced and garbled webhook bodies beside valid load: each answered 400 problem+json, no request from a corrupted body, valid traffic unaffected.",
    stack: { redis: "single" },
    load: { rate: p.rate ?? 200, leadInMs: LEAD_IN_MS, via: "direct" },
    probes: [gatewayReady, gatewayAlive, requestsExist],
    faults: [
      {
        name: "truncated bodies, some cut on the wire (limit_data)",
        action: {
          kind: "combined",
          actions: [
            {
              kind: "toxic",
              link: "ingress",
              // Headers and the start of a body pass, then the link closes: the gateway gets a body
              // shorter than its Content-Length, the sender no answer (counted apart by corrupt-rejected).
              toxic: { type: "limit_data", attributes: { bytes: 600 }, stream: "upstream" },
              reachOpenConnections: true,
            },
            { kind: "corrupt-sender", rate, corruption: "truncate", via: "ingress" },
          ],
        },
        durationMs: duration,
      },
      {
        name: "garbled bodies in slices (slicer)",
        action: {
          kind: "combined",
          actions: [
            {
              kind: "toxic",
              link: "ingress",
              // Each body arrives in 32-96-byte pieces 2 ms apart: the parser sees it whole or not at all.
              toxic: {
                type: "slicer",
                attributes: { average_size: 64, size_variation: 32, delay: 2_000 },
                stream: "upstream",
              },
              reachOpenConnections: true,
            },
            { kind: "corrupt-sender", rate, corruption: "garble", via: "ingress" },
          ],
        },
        durationMs: duration,
      },
      {
        name: "valid JSON of the wrong shape",
        action: { kind: "corrupt-sender", rate, corruption: "shape", via: "ingress" },
        durationMs: duration,
      },
    ],
    invariants: [
      { kind: "corrupt-rejected" },
      { kind: "answers", allowed: [201, 202, 207], includeUnanswered: true },
      { kind: "accounting" },
      { kind: "gateway-not-restarted" },
    ],
  };
}

export const network: Record<string, (p: RunParameters) => Experiment> = {
  "network/redis-reset": redisReset,
  "network/kube-latency": kubeLatency,
  "network/payload-corruption": payloadCorruption,
};
