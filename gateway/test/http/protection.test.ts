import { afterEach, describe, expect, it } from "vitest";
import { buildApp } from "../../src/app.js";
import { createMetrics } from "../../src/metrics.js";
import { namespaceAllowed, RateLimiter } from "../../src/protection.js";
import { Lifecycle } from "../../src/shutdown.js";
import type { ProcessResult } from "../../src/types.js";
import { metricValue, StubPipeline, type TestApp, testApp, testConfig, warningEvent } from "./helpers.js";

const EVENT = "/api/v1/signals/kubernetes-event";

let t: TestApp;
afterEach(async () => {
  await t?.app.close();
});

const send = (headers: Record<string, string> = {}) =>
  t.app.inject({ method: "POST", url: EVENT, payload: warningEvent(), headers });

describe("RateLimiter (token bucket)", () => {
  it("allows the burst, then the rate, and says how long to wait", () => {
    let now = 0;
    const limiter = new RateLimiter(100, () => now);
    expect([1, 2, 3].map(() => limiter.take("a", 2, 3))).toEqual([0, 0, 0]);
    expect(limiter.take("a", 2, 3)).toBeCloseTo(0.5);
    now += 500; // one token at 2/s
    expect(limiter.take("a", 2, 3)).toBe(0);
    expect(limiter.take("a", 2, 3)).toBeGreaterThan(0);
    expect(limiter.take("b", 2, 3)).toBe(0); // other clients are unaffected
  });

  it("keeps at most maxClients buckets, forgetting the idlest", () => {
    let now = 0;
    const limiter = new RateLimiter(3, () => now);
    for (const c of ["a", "b", "c", "d", "e"]) {
      now += 1;
      limiter.take(c, 1, 1);
    }
    expect(limiter.trackedClients).toBe(3);
    expect(limiter.take("e", 1, 1)).toBeGreaterThan(0); // e is still tracked (and empty)
    expect(limiter.take("a", 1, 1)).toBe(0); // a was forgotten: fresh bucket
  });
});

describe("namespaceAllowed", () => {
  it.each([
    [{ allow: [], deny: [] }, "any", true],
    [{ allow: ["a", "b"], deny: [] }, "b", true],
    [{ allow: ["a"], deny: [] }, "c", false],
    [{ allow: [], deny: ["kube-system"] }, "kube-system", false],
    [{ allow: ["team-*"], deny: [] }, "team-x", true],
    [{ allow: ["team-*"], deny: ["team-secret"] }, "team-secret", false],
    [{ allow: [], deny: ["*"] }, "x", false],
  ])("%j / %s → %s", (policy, ns, expected) => {
    expect(namespaceAllowed(ns, policy)).toBe(expected);
  });
});

describe("rate limiting per client", () => {
  it("answers 429 with Retry-After beyond the burst and counts it", async () => {
    let now = 0;
    t = await testApp({ rateLimit: { requestsPerSecond: 0.5, burst: 2 } }, { protection: { now: () => now } });
    expect((await send()).statusCode).toBe(201);
    expect((await send()).statusCode).toBe(201);
    const limited = await send();
    expect(limited.statusCode).toBe(429);
    expect(limited.headers["content-type"]).toMatch(/^application\/problem\+json/);
    expect(limited.json()).toMatchObject({
      type: "https://kubernaut.ai/problems/too-many-requests",
      title: "Too Many Requests",
    });
    expect(limited.json().detail).toBe("rate limit of 0.5 requests/s (burst 2) exceeded for this client");
    expect(limited.headers["retry-after"]).toBe("2");
    expect(await metricValue(t.metrics, "gateway_requests_rejected_total", { reason: "rate_limited" })).toBe(1);
    now += 2000;
    expect((await send()).statusCode).toBe(201);
    expect(t.pipeline.seen).toHaveLength(3);
  });

  it("keys clients by X-Forwarded-For only when trusted", async () => {
    t = await testApp({ rateLimit: { requestsPerSecond: 0.01, burst: 1 } }, { protection: { now: () => 0 } });
    expect((await send({ "x-forwarded-for": "10.0.0.1" })).statusCode).toBe(201);
    // Untrusted: the header is ignored, so this is the same (socket) client.
    expect((await send({ "x-forwarded-for": "10.0.0.2" })).statusCode).toBe(429);
    await t.app.close();

    t = await testApp(
      { rateLimit: { requestsPerSecond: 0.01, burst: 1, trustForwardedFor: true } },
      { protection: { now: () => 0 } },
    );
    expect((await send({ "x-forwarded-for": "10.0.0.1, 172.16.0.1" })).statusCode).toBe(201);
    expect((await send({ "x-forwarded-for": "10.0.0.2, 172.16.0.1" })).statusCode).toBe(201);
    expect((await send({ "x-forwarded-for": "10.0.0.1" })).statusCode).toBe(429);
  });

  it("does not limit when disabled, nor the probes", async () => {
    t = await testApp({ rateLimit: { enabled: false, requestsPerSecond: 0.01, burst: 1 } });
    for (let i = 0; i < 5; i++) expect((await send()).statusCode).toBe(201);
    for (let i = 0; i < 5; i++) expect((await t.app.inject({ method: "GET", url: "/healthz" })).statusCode).toBe(200);
  });
});

describe("backpressure", () => {
  it("sheds with a fast 503 + Retry-After beyond maxInFlight, and recovers", async () => {
    t = await testApp({ backpressure: { maxInFlight: 2 } });
    const release: ((r: ProcessResult) => void)[] = [];
    t.pipeline.respond = () => new Promise((resolve) => release.push(resolve));
    const held = [send(), send()];
    while (release.length < 2) await new Promise((r) => setImmediate(r));
    const started = Date.now();
    const shed = await send();
    expect(Date.now() - started).toBeLessThan(1000);
    expect(shed.statusCode).toBe(503);
    expect(shed.headers["retry-after"]).toBe("1");
    expect(shed.json().detail).toBe("the gateway is at its limit of 2 requests in flight; retry shortly");
    expect(await metricValue(t.metrics, "gateway_requests_rejected_total", { reason: "overloaded" })).toBe(1);
    for (const r of release) r({ status: "created", message: "ok", fingerprint: "f", duplicate: false });
    expect((await Promise.all(held)).map((r) => r.statusCode)).toEqual([201, 201]);
    t.pipeline.respond = (s) => ({ status: "created", message: "ok", fingerprint: s.fingerprint, duplicate: false });
    expect((await send()).statusCode).toBe(201);
  });

  it("sheds while the event loop lags beyond maxEventLoopLag", async () => {
    let lag = 0;
    t = await testApp({ backpressure: { maxEventLoopLag: "200ms" } }, { protection: { eventLoopLagMs: () => lag } });
    expect((await send()).statusCode).toBe(201);
    lag = 450;
    const shed = await send();
    expect(shed.statusCode).toBe(503);
    expect(shed.json().detail).toBe("the gateway is overloaded (event-loop lag 450 ms); retry shortly");
    lag = 10;
    expect((await send()).statusCode).toBe(201);
  });

  it("sheds while the event loop is busier than maxEventLoopUtilization", async () => {
    let busy = 0.5;
    t = await testApp(
      { backpressure: { maxEventLoopUtilization: 0.9 } },
      { protection: { eventLoopUtilization: () => busy } },
    );
    expect((await send()).statusCode).toBe(201);
    busy = 0.97;
    const shed = await send();
    expect(shed.statusCode).toBe(503);
    expect(shed.headers["retry-after"]).toBe("1");
    expect(shed.json().detail).toBe("the gateway is overloaded (event loop busy 97 % of the time); retry shortly");
    busy = 0.6;
    expect((await send()).statusCode).toBe(201);
  });

  it("does not shed on utilization by default, however busy the loop", async () => {
    t = await testApp({}, { protection: { eventLoopUtilization: () => 1 } });
    expect((await send()).statusCode).toBe(201);
  });

  it("refuses new work with 503 + Connection: close once closing", async () => {
    const lifecycle = new Lifecycle();
    t = await testApp({}, { lifecycle });
    lifecycle.phase = "closing";
    const res = await send();
    expect(res.statusCode).toBe(503);
    expect(res.headers.connection).toBe("close");
    expect(res.headers["retry-after"]).toBe("1");
    expect(await metricValue(t.metrics, "gateway_requests_rejected_total", { reason: "shutting_down" })).toBe(1);
  });

  it("applies a new limit from the config getter between requests", async () => {
    let current = testConfig({ rateLimit: { requestsPerSecond: 0.01, burst: 1 } });
    const pipeline = new StubPipeline();
    const metrics = createMetrics();
    t = {
      app: buildApp({ config: () => current, pipeline, metrics, protection: { now: () => 0 } }),
      pipeline,
      metrics,
    };
    expect((await send()).statusCode).toBe(201);
    expect((await send()).statusCode).toBe(429);
    current = testConfig({ rateLimit: { enabled: false } });
    expect((await send()).statusCode).toBe(201);
  });
});
