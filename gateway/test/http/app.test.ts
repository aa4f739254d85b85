import type { LightMyRequestResponse } from "fastify";
import { afterEach, describe, expect, it } from "vitest";
import { Lifecycle } from "../../src/shutdown.js";
import { ProblemError } from "../../src/types.js";
import { metricValue, type TestApp, testApp, warningEvent, webhook } from "./helpers.js";

const PROM = "/api/v1/signals/prometheus";
const EVENT = "/api/v1/signals/kubernetes-event";

let t: TestApp;
afterEach(async () => {
  await t?.app.close();
});

function expectProblem(res: LightMyRequestResponse, status: number, slug: string, path: string) {
  expect(res.statusCode, res.body).toBe(status);
  expect(res.headers["content-type"]).toMatch(/^application\/problem\+json/);
  const body = res.json();
  expect(body).toMatchObject({ type: `https://kubernaut.ai/problems/${slug}`, status, instance: path });
  expect(typeof body.title).toBe("string");
  expect(body.detail.length).toBeGreaterThan(0);
  expect(body.request_id).toBe(res.headers["x-request-id"]);
  expect(res.body).not.toMatch(/at .*\.(ts|js):\d+/); // no stack traces
  return body as { detail: string; title: string };
}

const post = (url: string, payload: unknown, headers: Record<string, string> = {}) =>
  t.app.inject({
    method: "POST",
    url,
    payload: payload as string,
    headers: { "content-type": "application/json", ...headers },
  });

describe("signal routes", () => {
  it("creates from a one-alert webhook: 201 with the result fields", async () => {
    t = await testApp();
    const res = await post(
      PROM,
      webhook({ alertname: "HighMemory", namespace: "payments", pod: "api-1", severity: "critical" }),
    );
    expect(res.statusCode).toBe(201);
    expect(res.json()).toMatchObject({
      status: "created",
      duplicate: false,
      remediationRequestNamespace: "payments",
      environment: "production",
      priority: "P0",
    });
    expect(res.json().fingerprint).toMatch(/^[a-f0-9]{64}$/);
    expect(t.pipeline.seen).toHaveLength(1);
    expect(t.pipeline.seen[0]).toMatchObject({ signalName: "HighMemory", severity: "critical", namespace: "payments" });
  });

  it("answers 202 for duplicates and storm aggregation, with the occurrence fields", async () => {
    t = await testApp();
    t.pipeline.respond = (s) => ({
      status: "duplicate",
      message: "duplicate",
      fingerprint: s.fingerprint,
      duplicate: true,
      occurrenceCount: 4,
      firstSeenAt: "2025-01-01T10:00:00.000Z",
      lastSeenAt: "2025-01-01T10:03:00.000Z",
    });
    const dup = await post(PROM, webhook({ alertname: "A" }));
    expect(dup.statusCode).toBe(202);
    expect(dup.json()).toMatchObject({ status: "duplicate", duplicate: true, occurrenceCount: 4 });
    t.pipeline.respond = (s) => ({
      status: "storm-aggregated",
      message: "storm",
      fingerprint: s.fingerprint,
      duplicate: false,
    });
    expect((await post(EVENT, warningEvent())).statusCode).toBe(202);
  });

  it("processes every alert of a webhook: 207 with results and summary", async () => {
    t = await testApp({ namespaces: { deny: ["blocked"] } });
    const payload = webhook(
      { alertname: "A", namespace: "ns", pod: "p1" },
      { alertname: "B", namespace: "ns", pod: "p2" },
      { alertname: "C", namespace: "ns", pod: "p3" },
      { alertname: "D", namespace: "blocked", pod: "p4" },
      { alertname: "E", namespace: "ns", pod: "p5" },
    );
    payload.alerts[2]!.status = "resolved";
    t.pipeline.respond = (s) =>
      s.signalName === "B"
        ? { status: "duplicate", message: "dup", fingerprint: s.fingerprint, duplicate: true, occurrenceCount: 2 }
        : s.signalName === "E"
          ? Promise.reject(
              new ProblemError(400, "RemediationRequest rejected by the API server: spec.signalName too long"),
            )
          : { status: "created", message: "created", fingerprint: s.fingerprint, duplicate: false };
    const res = await post(PROM, payload);
    expect(res.statusCode).toBe(207);
    const body = res.json();
    expect(body.results.map((r: { status: string }) => r.status)).toEqual([
      "created",
      "duplicate",
      "resolved",
      "rejected",
      "failed",
    ]);
    expect(body.results[3].message).toContain("namespace 'blocked'");
    expect(body.summary).toEqual({
      total: 5,
      created: 1,
      deduplicated: 1,
      stormAggregated: 0,
      resolved: 1,
      rejected: 1,
      failed: 1,
    });
    // Resolved and denied alerts never reach the pipeline.
    expect(t.pipeline.seen.map((s) => s.signalName).sort()).toEqual(["A", "B", "E"]);
  });

  it("fails the whole webhook with a retryable status when one alert hits a dependency failure", async () => {
    t = await testApp();
    t.pipeline.respond = (s) =>
      s.signalName === "B"
        ? Promise.reject(new ProblemError(503, "Redis and the Kubernetes API are unavailable", 7))
        : { status: "created", message: "created", fingerprint: s.fingerprint, duplicate: false };
    const res = await post(PROM, webhook({ alertname: "A" }, { alertname: "B" }));
    const body = expectProblem(res, 503, "service-unavailable", PROM);
    expect(res.headers["retry-after"]).toBe("7");
    expect(body.detail).toMatch(
      /^alerts\[1\] could not be processed: Redis and the Kubernetes API are unavailable; retry/,
    );
  });

  it("reports a resolved single alert without creating anything", async () => {
    t = await testApp();
    const payload = { ...webhook({ alertname: "A" }), status: "resolved" };
    payload.alerts[0]!.status = "resolved";
    const res = await post(PROM, payload);
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ status: "resolved", duplicate: false });
    expect(t.pipeline.seen).toHaveLength(0);
  });

  it("creates from a Warning event", async () => {
    t = await testApp();
    const res = await post(EVENT, warningEvent({ reason: "OOMKilled" }));
    expect(res.statusCode).toBe(201);
    expect(t.pipeline.seen[0]).toMatchObject({
      signalName: "OOMKilled",
      severity: "critical",
      sourceType: "kubernetes-event",
    });
  });

  it("refuses a denied namespace with 403 and counts it", async () => {
    t = await testApp({ namespaces: { allow: ["team-*"] } });
    const body = expectProblem(await post(EVENT, warningEvent()), 403, "forbidden", EVENT);
    expect(body.detail).toBe("namespace 'payments' is not allowed by the gateway's namespace policy");
    expect(await metricValue(t.metrics, "gateway_requests_rejected_total", { reason: "namespace_denied" })).toBe(1);
    const allowed = warningEvent({ involvedObject: { kind: "Pod", namespace: "team-a", name: "p" } });
    expect((await post(EVENT, allowed)).statusCode).toBe(201);
    expect(t.pipeline.seen).toHaveLength(1);
  });

  it("maps pipeline errors to problem+json: 503 with Retry-After, 504, and 500 without internals", async () => {
    t = await testApp();
    t.pipeline.respond = () => Promise.reject(new ProblemError(503, "Redis and the Kubernetes API are unavailable"));
    const unavailable = await post(EVENT, warningEvent());
    expectProblem(unavailable, 503, "service-unavailable", EVENT);
    expect(unavailable.headers["retry-after"]).toBe("5");
    t.pipeline.respond = () => Promise.reject(new ProblemError(504, "Kubernetes API did not answer in time"));
    expectProblem(await post(EVENT, warningEvent()), 504, "gateway-timeout", EVENT);
    t.pipeline.respond = () => Promise.reject(new TypeError("cannot read properties of undefined (reading 'secret')"));
    const internal = await post(EVENT, warningEvent());
    const body = expectProblem(internal, 500, "internal-error", EVENT);
    expect(internal.body).not.toContain("secret");
    expect(body.title).toBe("Internal Server Error");
  });

  it("answers 504 when processing exceeds server.requestTimeout", async () => {
    t = await testApp({ server: { requestTimeout: "1s" } });
    t.pipeline.respond = () => new Promise(() => {});
    const body = expectProblem(await post(EVENT, warningEvent()), 504, "gateway-timeout", EVENT);
    expect(body.detail).toContain("within 1000 ms");
  });
});

describe("validation (400 naming the field)", () => {
  const cases: [string, string, unknown, string][] = [
    ["empty alerts", PROM, { alerts: [] }, "alerts must not be empty"],
    ["missing alerts", PROM, { version: "4" }, "alerts is required"],
    ["alerts not an array", PROM, { alerts: {} }, "alerts must be an array"],
    [
      "missing alertname",
      PROM,
      webhook({ alertname: "A" }, { alertname: "B" }, { pod: "x" }),
      "alerts[2].labels.alertname is required",
    ],
    ["missing labels", PROM, { alerts: [{ status: "firing" }] }, "alerts[0].labels is required"],
    [
      "non-string label",
      PROM,
      { alerts: [{ labels: { alertname: "A", replicas: 3 } }] },
      "alerts[0].labels.replicas must be a string",
    ],
    [
      "unknown alert status",
      PROM,
      { alerts: [{ status: "pending", labels: { alertname: "A" } }] },
      "alerts[0].status must be one of: firing, resolved",
    ],
    ["other payload version", PROM, { ...webhook({ alertname: "A" }), version: "5" }, "version must be one of: 4"],
    [
      "bad timestamp",
      PROM,
      { alerts: [{ labels: { alertname: "A" }, startsAt: "now" }] },
      "alerts[0].startsAt is not a valid RFC 3339 timestamp",
    ],
    ["body is an array", PROM, [webhook({ alertname: "A" })], "request body must be an object"],
    [
      "Normal event",
      EVENT,
      warningEvent({ type: "Normal" }),
      "type 'Normal' is not processed: only Warning and Error events are accepted",
    ],
    ["missing reason", EVENT, { ...warningEvent(), reason: undefined }, "reason is required"],
    ["empty reason", EVENT, warningEvent({ reason: "" }), "reason must not be empty"],
    ["missing kind", EVENT, warningEvent({ involvedObject: { name: "p" } }), "involvedObject.kind is required"],
    ["missing name", EVENT, warningEvent({ involvedObject: { kind: "Pod" } }), "involvedObject.name is required"],
    ["missing involvedObject", EVENT, { type: "Warning", reason: "X" }, "involvedObject is required"],
    ["negative count", EVENT, warningEvent({ count: -1 }), "count must be at least 0"],
  ];
  it.each(cases)("%s", async (_name, url, payload, detail) => {
    t = await testApp();
    const body = expectProblem(await post(url, JSON.stringify(payload)), 400, "validation-error", url);
    expect(body.detail.startsWith(detail), body.detail).toBe(true);
    expect(t.pipeline.seen).toHaveLength(0);
  });

  it("limits label maps: count and value size, saying so", async () => {
    t = await testApp();
    const many = Object.fromEntries(Array.from({ length: 101 }, (_, i) => [`l${i}`, "v"]));
    const tooMany = await post(PROM, { alerts: [{ labels: { alertname: "A", ...many } }] });
    expect(expectProblem(tooMany, 400, "validation-error", PROM).detail).toBe(
      "alerts[0].labels has too many entries (at most 100 allowed)",
    );
    const tooLong = await post(PROM, { alerts: [{ labels: { alertname: "A", big: "x".repeat(1025) } }] });
    expect(expectProblem(tooLong, 400, "validation-error", PROM).detail).toBe(
      "alerts[0].labels.big is too long (at most 1024 characters allowed)",
    );
    const longKey = await post(PROM, { alerts: [{ labels: { alertname: "A", ["k".repeat(300)]: "v" } }] });
    expect(expectProblem(longKey, 400, "validation-error", PROM).detail).toBe(
      "alerts[0].labels has a key longer than 256 characters",
    );
    const common = await post(PROM, { ...webhook({ alertname: "A" }), commonLabels: { "odd key/x": 1 } });
    expect(expectProblem(common, 400, "validation-error", PROM).detail).toBe(
      'commonLabels["odd key/x"] must be a string',
    );
  });
});

describe("body handling", () => {
  it("accepts a missing Content-Type as JSON", async () => {
    t = await testApp();
    const res = await t.app.inject({ method: "POST", url: EVENT, payload: JSON.stringify(warningEvent()) });
    expect(res.statusCode).toBe(201);
  });

  it.each([
    "text/plain",
    "application/x-www-form-urlencoded",
    "application/json-patch+json",
    "application/json; charset=latin1",
  ])("answers 415 with Accept: application/json for %s", async (type) => {
    t = await testApp();
    const res = await post(EVENT, JSON.stringify(warningEvent()), { "content-type": type });
    expectProblem(res, 415, "unsupported-media-type", EVENT);
    expect(res.headers.accept).toBe("application/json");
  });

  it("accepts application/json with a UTF-8 charset in any case", async () => {
    t = await testApp();
    const res = await post(EVENT, JSON.stringify(warningEvent()), {
      "content-type": "Application/JSON; charset=UTF-8",
    });
    expect(res.statusCode).toBe(201);
  });

  it("answers 413 beyond the body limit, naming the limit", async () => {
    t = await testApp({ server: { bodyLimit: "2KiB" } });
    const big = warningEvent({ message: "m".repeat(4096) });
    const body = expectProblem(await post(EVENT, JSON.stringify(big)), 413, "payload-too-large", EVENT);
    expect(body.detail).toContain("2048 bytes");
    expect(body.title).toBe("Request Entity Too Large");
  });

  it("answers bad JSON with 400 naming the position", async () => {
    t = await testApp();
    const body = expectProblem(await post(PROM, '{"alerts": [\n  {"labels": }]}'), 400, "validation-error", PROM);
    expect(body.detail).toBe(
      'request body is not valid JSON: unexpected character "}" at position 26 (line 2, column 14)',
    );
  });

  it("refuses invalid UTF-8, deep nesting, empty bodies and __proto__ keys", async () => {
    t = await testApp();
    const bad = Buffer.concat([Buffer.from('{"reason": "'), Buffer.from([0xc3, 0x28]), Buffer.from('"}')]);
    expect(expectProblem(await post(EVENT, bad), 400, "validation-error", EVENT).detail).toContain("not valid UTF-8");
    const deep = `${'{"a":'.repeat(1000)}1${"}".repeat(1000)}`;
    expect(expectProblem(await post(EVENT, deep), 400, "validation-error", EVENT).detail).toContain(
      "nesting deeper than 32 levels",
    );
    expect(expectProblem(await post(EVENT, ""), 400, "validation-error", EVENT).detail).toBe(
      "request body is empty; send a JSON object",
    );
    const empty = await t.app.inject({ method: "POST", url: EVENT });
    expect(expectProblem(empty, 400, "validation-error", EVENT).detail).toBe(
      "request body is empty; send a JSON object",
    );
    const proto =
      '{"type":"Warning","reason":"X","involvedObject":{"kind":"Pod","name":"p"},"metadata":{"labels":{"\\u005f_proto__":"x"}}}';
    expect(expectProblem(await post(EVENT, proto), 400, "validation-error", EVENT).detail).toContain('"__proto__"');
  });
});

describe("every response", () => {
  it("echoes a caller's X-Request-ID, else makes a UUID; carries the security headers", async () => {
    t = await testApp();
    const responses = [
      await t.app.inject({ method: "GET", url: "/healthz", headers: { "x-request-id": "caller-123" } }),
      await t.app.inject({ method: "GET", url: "/nope" }),
      await post(EVENT, "{bad"),
      await post(EVENT, warningEvent()),
    ];
    expect(responses[0]!.headers["x-request-id"]).toBe("caller-123");
    for (const res of responses.slice(1)) {
      expect(res.headers["x-request-id"]).toMatch(
        /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
      );
    }
    for (const res of responses) {
      expect(res.headers).toMatchObject({
        "x-content-type-options": "nosniff",
        "x-frame-options": "DENY",
        "content-security-policy": "default-src 'none'",
        "referrer-policy": "no-referrer",
      });
    }
  });

  it("does not echo a hostile X-Request-ID", async () => {
    t = await testApp();
    const res = await t.app.inject({ method: "GET", url: "/healthz", headers: { "x-request-id": "a b<script>" } });
    expect(res.headers["x-request-id"]).not.toBe("a b<script>");
  });

  it("answers unknown paths with 404 and known paths with the wrong method with 405 + Allow", async () => {
    t = await testApp();
    expectProblem(
      await t.app.inject({ method: "GET", url: "/api/v1/nothing?x=1" }),
      404,
      "not-found",
      "/api/v1/nothing",
    );
    const wrong = await t.app.inject({ method: "GET", url: PROM });
    const body = expectProblem(wrong, 405, "method-not-allowed", PROM);
    expect(wrong.headers.allow).toBe("POST");
    expect(body.detail).toBe(`GET is not supported on ${PROM}; use POST`);
    const deleteHealth = await t.app.inject({ method: "DELETE", url: "/healthz" });
    expectProblem(deleteHealth, 405, "method-not-allowed", "/healthz");
    expect(deleteHealth.headers.allow).toBe("GET, HEAD");
  });

  it("counts requests by route and status, and tracks in-flight requests", async () => {
    t = await testApp();
    await post(EVENT, warningEvent());
    await post(EVENT, "{");
    await t.app.inject({ method: "GET", url: "/nope" });
    const count = (labels: Record<string, string>) => metricValue(t.metrics, "gateway_http_requests_total", labels);
    expect(await count({ route: EVENT, status: "201" })).toBe(1);
    expect(await count({ route: EVENT, status: "400" })).toBe(1);
    expect(await count({ route: "unmatched", status: "404" })).toBe(1);
    expect(await metricValue(t.metrics, "gateway_http_request_duration_seconds_count", { route: EVENT })).toBe(2);
    expect(await metricValue(t.metrics, "gateway_http_requests_in_flight")).toBe(0);
  });
});

describe("probes", () => {
  it("liveness is 200 healthy on both paths", async () => {
    t = await testApp();
    for (const url of ["/healthz", "/health"]) {
      const res = await t.app.inject({ method: "GET", url });
      expect(res.statusCode).toBe(200);
      expect(res.json()).toEqual({ status: "healthy" });
    }
  });

  it("readiness follows the pipeline's health: 503 only when neither Redis nor Kubernetes is usable", async () => {
    t = await testApp();
    let health = { redis: true, kubernetes: true };
    t.pipeline.health = () => health;
    expect((await t.app.inject({ method: "GET", url: "/readyz" })).json()).toEqual({
      status: "ready",
      redis: true,
      kubernetes: true,
    });
    health = { redis: false, kubernetes: true };
    expect((await t.app.inject({ method: "GET", url: "/ready" })).statusCode).toBe(200);
    health = { redis: false, kubernetes: false };
    const down = await t.app.inject({ method: "GET", url: "/readyz" });
    expect(expectProblem(down, 503, "service-unavailable", "/readyz").detail).toBe(
      "neither Redis nor the Kubernetes API is usable",
    );
    expect(down.headers["retry-after"]).toBeDefined();
  });

  it("readiness is 503 while shutting down; liveness stays 200", async () => {
    const lifecycle = new Lifecycle();
    t = await testApp({}, { lifecycle });
    lifecycle.phase = "draining";
    expectProblem(await t.app.inject({ method: "GET", url: "/readyz" }), 503, "service-unavailable", "/readyz");
    expect((await t.app.inject({ method: "GET", url: "/healthz" })).statusCode).toBe(200);
    // Still serving signals while draining.
    expect((await post(EVENT, warningEvent())).statusCode).toBe(201);
  });

  it("exposes Prometheus text with the gateway metrics", async () => {
    t = await testApp();
    const res = await t.app.inject({ method: "GET", url: "/metrics" });
    expect(res.statusCode).toBe(200);
    expect(res.headers["content-type"]).toMatch(/^text\/plain; version=0\.0\.4/);
    for (const name of [
      "gateway_alerts_received_total",
      "gateway_http_requests_in_flight",
      "process_cpu_user_seconds_total",
    ]) {
      expect(res.body).toContain(name);
    }
  });
});
