import type { AddressInfo } from "node:net";
import { Agent, request } from "undici";
import { afterEach, describe, expect, it } from "vitest";
import { eventually } from "../../../harness/src/poll.js";
import { buildApp } from "../../src/app.js";
import { createMetrics } from "../../src/metrics.js";
import { gracefulShutdown, Lifecycle } from "../../src/shutdown.js";
import type { ProcessResult } from "../../src/types.js";
import { StubPipeline, testConfig, warningEvent } from "./helpers.js";

const silentLog = { info() {}, warn() {}, error() {}, debug() {} } as never;

/** A real listening gateway app whose pipeline holds every request until released. */
async function listeningApp() {
  const pipeline = new StubPipeline();
  const held: ((r: ProcessResult) => void)[] = [];
  pipeline.respond = () => new Promise((resolve) => held.push(resolve));
  const lifecycle = new Lifecycle();
  const app = buildApp({ config: () => testConfig(), pipeline, metrics: createMetrics(), lifecycle });
  await app.listen({ host: "127.0.0.1", port: 0 });
  const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  const agent = new Agent({ keepAliveTimeout: 60_000, connections: 10 });
  let closed = 0;
  const closePipeline = async () => {
    closed++;
  };
  const post = () =>
    request(`${base}/api/v1/signals/kubernetes-event`, {
      method: "POST",
      body: JSON.stringify(warningEvent()),
      headers: { "content-type": "application/json" },
      dispatcher: agent,
    });
  const get = (path: string) => request(`${base}${path}`, { dispatcher: agent });
  const releaseAll = () => {
    for (const r of held.splice(0)) r({ status: "created", message: "ok", fingerprint: "f", duplicate: false });
  };
  return { app, lifecycle, held, post, get, releaseAll, closePipeline, closedCount: () => closed, agent, base };
}

let cleanup: (() => Promise<void>) | undefined;
afterEach(async () => {
  await cleanup?.();
  cleanup = undefined;
});

describe("graceful shutdown", () => {
  it("turns readiness 503 at once, serves during the grace period, then drains in-flight requests", async () => {
    const g = await listeningApp();
    cleanup = async () => {
      await g.agent.close();
      await g.app.close();
    };
    const inFlight = [g.post(), g.post(), g.post()];
    await eventually(() => g.held.length === 3, { what: "three requests in the pipeline" });

    const done = gracefulShutdown({
      app: g.app,
      lifecycle: g.lifecycle,
      closePipeline: g.closePipeline,
      shutdown: { gracePeriodMs: 1500, drainTimeoutMs: 10_000, auditFlushTimeoutMs: 1000 },
      log: silentLog,
    });
    expect((await g.get("/readyz")).statusCode).toBe(503);
    expect((await g.get("/healthz")).statusCode).toBe(200);
    // Still accepted during the grace period.
    const late = g.post();
    await eventually(() => g.held.length === 4, { what: "the late request in the pipeline" });

    await eventually(() => g.lifecycle.phase === "closing", { what: "the grace period to end", timeoutMs: 5000 });
    await eventually(
      async () => {
        try {
          await fetch(`${g.base}/healthz`, { signal: AbortSignal.timeout(1000) });
          return false;
        } catch {
          return true; // new connections are refused
        }
      },
      { what: "new connections to be refused" },
    );
    expect(g.closedCount()).toBe(0); // pipeline stays open while requests are in flight

    g.releaseAll();
    const released = Date.now();
    const responses = await Promise.all([...inFlight, late]);
    expect(responses.map((r) => r.statusCode)).toEqual([201, 201, 201, 201]);
    expect(responses.map((r) => r.headers.connection)).toEqual(["close", "close", "close", "close"]);
    await done;
    // Drained as soon as the last request finished, not at the 10 s drain timeout.
    expect(Date.now() - released).toBeLessThan(5000);
    expect(g.closedCount()).toBe(1);
  });

  it("bounds the drain: a request that never finishes does not keep the process alive", async () => {
    const g = await listeningApp();
    cleanup = async () => {
      await g.agent.close();
    };
    const stuck = g.post().catch((err: Error) => err);
    await eventually(() => g.held.length === 1, { what: "the stuck request in the pipeline" });
    const started = Date.now();
    await gracefulShutdown({
      app: g.app,
      lifecycle: g.lifecycle,
      closePipeline: g.closePipeline,
      shutdown: { gracePeriodMs: 0, drainTimeoutMs: 500, auditFlushTimeoutMs: 1000 },
      log: silentLog,
    });
    expect(Date.now() - started).toBeLessThan(5000);
    expect(g.closedCount()).toBe(1);
    expect(await stuck).toBeInstanceOf(Error); // its connection was closed
  });
});
