import { monitorEventLoopDelay, performance } from "node:perf_hooks";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { Metrics } from "./metrics.js";
import { sendProblem } from "./problem.js";
import type { Lifecycle } from "./shutdown.js";
import type { GatewayConfig } from "./types.js";

/**
 * Token bucket per client. Buckets live in a Map kept in least-recently-used
 * order, capped at `maxClients`: a flood of distinct (or spoofed) clients
 * evicts the idlest bucket instead of growing memory.
 */
export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; updatedAt: number }>();

  constructor(
    private readonly maxClients = 10_000,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Takes a token for `client`: 0 when allowed, else seconds until the next token. */
  take(client: string, perSecond: number, burst: number): number {
    const now = this.now();
    const bucket = this.buckets.get(client) ?? { tokens: burst, updatedAt: now };
    bucket.tokens = Math.min(burst, bucket.tokens + ((now - bucket.updatedAt) / 1000) * perSecond);
    bucket.updatedAt = now;
    this.buckets.delete(client);
    this.buckets.set(client, bucket);
    if (this.buckets.size > this.maxClients) {
      const idlest = this.buckets.keys().next().value;
      if (idlest !== undefined) this.buckets.delete(idlest);
    }
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return 0;
    }
    return (1 - bucket.tokens) / perSecond;
  }

  get trackedClients(): number {
    return this.buckets.size;
  }
}

/**
 * Who a request counts against. Decision: the socket's peer address, unless
 * `rateLimit.trustForwardedFor` says a trusted proxy sits in front; then the
 * first X-Forwarded-For hop (the original client). Trusting the header without
 * such a proxy would let any caller pick its own bucket.
 */
export function clientKey(request: FastifyRequest, trustForwardedFor: boolean): string {
  if (trustForwardedFor) {
    const header = request.headers["x-forwarded-for"];
    const first = (Array.isArray(header) ? header[0] : header)?.split(",", 1)[0]?.trim();
    if (first) return first.slice(0, 64);
  }
  return request.ip;
}

/** Allow/deny policy; a trailing `*` matches a prefix. Deny wins; an empty allow list allows all. */
export function namespaceAllowed(namespace: string, policy: { allow: string[]; deny: string[] }): boolean {
  const matches = (pattern: string) =>
    pattern.endsWith("*") ? namespace.startsWith(pattern.slice(0, -1)) : pattern === namespace;
  if (policy.deny.some(matches)) return false;
  return policy.allow.length === 0 || policy.allow.some(matches);
}

/** How busy the event loop is: p99 delay over the last 500 ms, and the share of the last 200 ms it was busy. */
interface LoopLoad {
  lagMs: () => number;
  utilization: () => number;
}

function startLoopMonitor(app: FastifyInstance): LoopLoad {
  const histogram = monitorEventLoopDelay({ resolution: 10 });
  histogram.enable();
  let lagMs = 0;
  const lagTimer = setInterval(() => {
    lagMs = histogram.percentile(99) / 1e6;
    histogram.reset();
  }, 500);
  // Sampled every 100 ms over the last 200 ms: one big request does not shed, a loop
  // busy for that long does, and shedding stops within 100 ms of the load easing off.
  const samples = [performance.eventLoopUtilization()];
  let utilization = 0;
  const eluTimer = setInterval(() => {
    const now = performance.eventLoopUtilization();
    samples.push(now);
    if (samples.length > 3) samples.shift();
    utilization = performance.eventLoopUtilization(now, samples[0]).utilization;
  }, 100);
  lagTimer.unref();
  eluTimer.unref();
  app.addHook("onClose", async () => {
    clearInterval(lagTimer);
    clearInterval(eluTimer);
    histogram.disable();
  });
  return { lagMs: () => lagMs, utilization: () => utilization };
}

export interface ProtectionOptions {
  config: () => GatewayConfig;
  metrics: Metrics;
  lifecycle: Lifecycle;
  /** Test seams: a clock for the token buckets and event-loop probes. */
  now?: () => number;
  eventLoopLagMs?: () => number;
  eventLoopUtilization?: () => number;
}

/**
 * Load protection for the signal routes (section 10), cheapest check first and
 * before the body is read: shutting down → 503, too much work in flight or a
 * lagging event loop → 503, client over its rate → 429. Every refusal is
 * counted in gateway_requests_rejected_total{reason}. Refusals are answered
 * directly (no Error, no stack trace, no log line): shedding must stay cheap
 * exactly when the gateway is busiest.
 *
 * Utilization is for a process under a CPU limit (a CFS quota): there the
 * requests wait in the kernel (accept queue, socket buffers) for seconds while
 * the loop's own delay stays within its bound; a loop busy all the time is the
 * sign, and shedding then keeps the work within what the quota allows.
 */
export function installLoadProtection(app: FastifyInstance, opts: ProtectionOptions): void {
  const limiter = new RateLimiter(10_000, opts.now);
  const monitor = startLoopMonitor(app);
  const lag = opts.eventLoopLagMs ?? monitor.lagMs;
  const utilization = opts.eventLoopUtilization ?? monitor.utilization;
  let inFlight = 0;
  app.addHook("onRequest", async (request, reply) => {
    const refuse = (reason: string, status: 429 | 503, detail: string, retryAfter: number): FastifyReply => {
      opts.metrics.requestsRejected.inc({ reason });
      return sendProblem(request, reply, status, detail, retryAfter);
    };
    const cfg = opts.config();
    if (opts.lifecycle.phase === "closing") {
      return refuse("shutting_down", 503, "the gateway is shutting down; retry the request", 1);
    }
    const { maxInFlight, maxEventLoopLagMs, maxEventLoopUtilization } = cfg.backpressure;
    if (inFlight >= maxInFlight) {
      const detail = `the gateway is at its limit of ${maxInFlight} requests in flight; retry shortly`;
      return refuse("overloaded", 503, detail, 1);
    }
    const lagMs = lag();
    if (lagMs > maxEventLoopLagMs) {
      const detail = `the gateway is overloaded (event-loop lag ${Math.round(lagMs)} ms); retry shortly`;
      return refuse("overloaded", 503, detail, 1);
    }
    const busy = utilization();
    if (busy > maxEventLoopUtilization) {
      const detail = `the gateway is overloaded (event loop busy ${Math.round(busy * 100)} % of the time); retry shortly`;
      return refuse("overloaded", 503, detail, 1);
    }
    const { enabled, requestsPerSecond, burst, trustForwardedFor } = cfg.rateLimit;
    if (enabled) {
      const wait = limiter.take(clientKey(request, trustForwardedFor ?? false), requestsPerSecond, burst);
      if (wait > 0) {
        const detail = `rate limit of ${requestsPerSecond} requests/s (burst ${burst}) exceeded for this client`;
        return refuse("rate_limited", 429, detail, wait);
      }
    }
    inFlight++;
    // 'close' fires once per response, also when the client went away mid-request.
    reply.raw.once("close", () => inFlight--);
  });
}
