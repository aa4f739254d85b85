import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GatewayProcess, MetricsSnapshot, parseExposition, type StartedGateway } from "../src/components/gateway.js";
import { scratchDir } from "../src/paths.js";
import { eventually } from "../src/poll.js";
import { freePort } from "../src/ports.js";

describe("parseExposition", () => {
  it("reads samples with labels, escapes and special values", () => {
    const samples = parseExposition(
      [
        "# HELP gateway_http_requests_total HTTP requests",
        "# TYPE gateway_http_requests_total counter",
        'gateway_http_requests_total{route="/a",status="201"} 3',
        'gateway_http_requests_total{route="/a",status="400"} 1',
        'odd{msg="say \\"hi\\"\\nbye"} 1 1700000000000',
        'le_bucket{le="+Inf"} +Inf',
        "gateway_redis_available 1",
      ].join("\n"),
    );
    const m = new MetricsSnapshot(samples);
    expect(m.value("gateway_http_requests_total")).toBe(4);
    expect(m.value("gateway_http_requests_total", { status: "201" })).toBe(3);
    expect(m.value("gateway_redis_available")).toBe(1);
    expect(samples.find((s) => s.name === "odd")?.labels.msg).toBe('say "hi"\nbye');
    expect(m.value("le_bucket")).toBe(Number.POSITIVE_INFINITY);
    expect(m.value("absent")).toBe(0);
  });
});

describe("GatewayProcess with every dependency down", () => {
  let gw: StartedGateway;

  beforeAll(async () => {
    // A kubeconfig and a Redis URL that point at closed ports.
    const dir = scratchDir("gateway-test");
    const kubeconfig = join(dir, "kubeconfig");
    writeFileSync(
      kubeconfig,
      JSON.stringify({
        apiVersion: "v1",
        kind: "Config",
        clusters: [
          { name: "c", cluster: { server: `https://127.0.0.1:${await freePort()}`, "insecure-skip-tls-verify": true } },
        ],
        users: [{ name: "u", user: { token: "t" } }],
        contexts: [{ name: "x", context: { cluster: "c", user: "u" } }],
        "current-context": "x",
      }),
    );
    gw = await new GatewayProcess()
      .withConfig({
        redis: { url: `redis://127.0.0.1:${await freePort()}` },
        dataStorage: { url: `http://127.0.0.1:${await freePort()}` },
        kubernetes: { requestTimeout: "1s" },
        shutdown: { auditFlushTimeout: "1s" },
      })
      .withEnv({ GATEWAY_KUBECONFIG: kubeconfig })
      .withStartupProbe("/healthz")
      .start();
  });

  afterAll(async () => {
    await gw?.stop();
  });

  it("refuses signals with a retryable 503 and then reports itself not ready (but live)", async () => {
    const res = await fetch(`${gw.getUrl()}/api/v1/signals/kubernetes-event`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        type: "Warning",
        reason: "BackOff",
        involvedObject: { kind: "Pod", namespace: "default", name: "p" },
      }),
    });
    expect([503, 504]).toContain(res.status);
    expect(res.headers.get("content-type")).toMatch(/^application\/problem\+json/);
    if (res.status === 503) expect(res.headers.get("retry-after")).toMatch(/^\d+$/);
    // The pipeline learns that the API server is unusable from the failed call.
    await eventually(async () => (await fetch(`${gw.getUrl()}/readyz`)).status === 503, {
      what: "readiness to report both dependencies unusable",
      timeoutMs: 30_000,
    });
    expect((await fetch(`${gw.getUrl()}/healthz`)).status).toBe(200);
  });

  it("reports configuration reloads through its metrics", async () => {
    expect(await gw.updateConfig({ rateLimit: { burst: 5 } })).toBe("success");
    expect(await gw.writeConfigFile("rateLimit: [oops\n")).toBe("failure");
    const m = await gw.metrics();
    expect(m.value("gateway_config_reloads_total", { result: "success" })).toBe(1);
    expect(m.value("gateway_config_reloads_total", { result: "failure" })).toBe(1);
  });
});
