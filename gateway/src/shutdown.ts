import { setTimeout as delay } from "node:timers/promises";
import type { FastifyBaseLogger, FastifyInstance } from "fastify";
import type { GatewayConfig } from "./types.js";

/**
 * Where the process is in its life: `serving`; `draining` (readiness says 503
 * so load balancers move away, requests are still served); `closing` (no new
 * work: requests still arriving on open connections get 503 + Retry-After).
 */
export class Lifecycle {
  phase: "serving" | "draining" | "closing" = "serving";
}

export interface ShutdownOptions {
  app: FastifyInstance;
  lifecycle: Lifecycle;
  /** Flushes audit, closes Redis (PipelineRuntime.close). */
  closePipeline: () => Promise<void>;
  shutdown: GatewayConfig["shutdown"];
  log: FastifyBaseLogger;
}

async function withinMs(work: Promise<unknown>, ms: number): Promise<boolean> {
  const timeout = new AbortController();
  const finished = await Promise.race([
    work.then(() => true),
    delay(ms, false, { signal: timeout.signal }).catch(() => false),
  ]);
  timeout.abort();
  return finished;
}

/**
 * Section 10: readiness 503 at once, keep serving for the grace period, then
 * stop accepting, let in-flight requests finish (bounded), then close the
 * pipeline. Resolves when done; throws only if the pipeline failed to close.
 */
export async function gracefulShutdown(opts: ShutdownOptions): Promise<void> {
  const { app, lifecycle, shutdown, log } = opts;
  lifecycle.phase = "draining";
  log.info({ gracePeriodMs: shutdown.gracePeriodMs }, "shutdown: readiness is 503, serving during the grace period");
  await delay(shutdown.gracePeriodMs);

  lifecycle.phase = "closing";
  log.info({ drainTimeoutMs: shutdown.drainTimeoutMs }, "shutdown: no longer accepting connections, draining");
  const drained = await withinMs(app.close(), shutdown.drainTimeoutMs);
  if (!drained) {
    log.warn(
      { drainTimeoutMs: shutdown.drainTimeoutMs },
      "shutdown: requests still in flight after the drain timeout; closing their connections",
    );
    app.server.closeAllConnections();
  } else {
    log.info("shutdown: all requests finished; closing the pipeline");
  }

  const closed = await withinMs(opts.closePipeline(), shutdown.auditFlushTimeoutMs + 5_000);
  if (!closed) throw new Error(`pipeline did not close within ${shutdown.auditFlushTimeoutMs + 5_000} ms`);
  log.info("shutdown: complete");
}
