// The gateway k6 scripts run unchanged on the embedded runner: short, slow runs against a stand-in
// for the gateway's HTTP contract, checking that each script's plumbing and thresholds work.
import { afterEach, describe, expect, it } from "vitest";
import { type CliRun, runCli, values } from "./support/run-cli.js";
import { type StubGateway, type StubOptions, startStubGateway } from "./support/stub-gateway.js";

let stub: StubGateway | undefined;
afterEach(async () => {
  await stub?.close();
  stub = undefined;
});

async function run(script: string, env: Record<string, string>, options: StubOptions = {}) {
  stub = await startStubGateway(options);
  return runCli(`load/scripts/${script}`, { TARGET: stub.url, TESTID: "scripts-test", ...env });
}

/**
 * Every threshold but the latency ones must hold against the stand-in, and the exit code must
 * agree with the thresholds. Latency thresholds are left out: on a busy shared machine they judge
 * the machine, not the script.
 */
function expectThresholdsHoldExceptLatency(result: CliRun): void {
  const crossed = Object.entries(result.summary?.metrics ?? {}).flatMap(([name, m]) =>
    Object.entries(m.thresholds ?? {})
      .filter(([, t]) => !t.ok)
      .map(([source]) => `${name} ${source}`),
  );
  expect(result.summary, result.stderr).toBeDefined();
  expect(crossed.filter((c) => !c.startsWith("http_req_duration"))).toEqual([]);
  expect(result.code, result.stderr).toBe(crossed.length > 0 ? 99 : 0);
}

describe("gateway load scripts", () => {
  it("gateway-1000rps sends the traffic mix to both endpoints and passes on a healthy target", async () => {
    const result = await run("gateway-1000rps.ts", { RATE: "50", DURATION: "2s", WARMUP_RATE: "0" });
    expectThresholdsHoldExceptLatency(result);
    expect(values(result, "http_reqs").count).toBe(100);
    expect(stub?.received.get("/api/v1/signals/prometheus")).toBeGreaterThan(50);
    expect(stub?.received.get("/api/v1/signals/kubernetes-event")).toBeGreaterThan(0);
    expect(Object.keys(result.summary?.metrics ?? {})).toEqual(
      expect.arrayContaining(["http_req_duration{scenario:sustained,status:202}", "dropped_iterations", "checks"]),
    );
    expect(values(result, "checks").rate).toBe(1);
    // The per-signal outcome counters reconcile with what the gateway stand-in stored.
    expect(values(result, "signals_created").count).toBe(stub?.fingerprints.size);
    expect(values(result, "signals_duplicate").count).toBeGreaterThan(0);
    expect(result.stdout).toMatch(/http_req_duration\.+: avg=/);
  });

  it("gateway-1000rps warms up first: every pool member once, then the measured scenario", async () => {
    const result = await run("gateway-1000rps.ts", {
      RATE: "20",
      DURATION: "1s",
      WARMUP_RATE: "40",
      POOL_SIZE: "40",
      NEW_SHARE: "0",
      STORM_EVERY: "0",
    });
    expectThresholdsHoldExceptLatency(result);
    // 40 warm-up iterations (one per pool member) and 20 measured ones, all duplicates of the warm-up.
    expect(values(result, "http_reqs").count).toBe(60);
    expect(values(result, "http_req_duration{scenario:sustained}").count).toBe(20);
    expect(values(result, "signals_created").count).toBe(stub?.fingerprints.size);
    expect(stub?.fingerprints.size).toBeLessThanOrEqual(40 * 4);
  });

  it("gateway-burst accepts backpressure that carries Retry-After", async () => {
    const result = await run(
      "gateway-burst.ts",
      { BASE_RATE: "20", PEAK_RATE: "100", RAMP: "1s", HOLD: "1s", WARMUP_RATE: "0" },
      { backpressureEvery: 5 },
    );
    expectThresholdsHoldExceptLatency(result);
    expect(values(result, "backpressure_responses").count).toBeGreaterThan(10);
    expect(values(result, "backpressure_with_retry_after").rate).toBe(1);
    expect(values(result, "http_req_failed").rate).toBe(0);
  });

  it("gateway-burst fails (exit 99) when backpressure comes without Retry-After", async () => {
    const result = await run(
      "gateway-burst.ts",
      { BASE_RATE: "20", PEAK_RATE: "100", RAMP: "1s", HOLD: "1s", WARMUP_RATE: "0" },
      { backpressureEvery: 5, retryAfter: false },
    );
    expect(result.code).toBe(99);
    expect(values(result, "backpressure_with_retry_after").rate).toBeLessThan(1);
    expect(result.summary?.metrics.backpressure_with_retry_after?.thresholds).toEqual({ "rate==1": { ok: false } });
  });

  it("gateway-latency runs a normal then a burst scenario with per-scenario thresholds", async () => {
    const result = await run("gateway-latency.ts", {
      NORMAL_RATE: "40",
      NORMAL_DURATION: "2s",
      BURST_RATE: "100",
      RAMP: "1s",
      HOLD: "1s",
      WARMUP_RATE: "0",
    });
    expectThresholdsHoldExceptLatency(result);
    expect(values(result, "http_req_duration{scenario:normal}").count).toBe(80);
    expect(values(result, "http_req_duration{scenario:burst}").count).toBeGreaterThan(100);
    expect(result.summary?.metrics["dropped_iterations{scenario:normal}"]?.thresholds).toEqual({
      "count<1": { ok: true },
    });
  });

  it("gateway-soak runs the ci mode (what `./taskw load:soak MODE=ci` passes) and refuses an unknown SOAK_MODE", async () => {
    const result = await run("gateway-soak.ts", { SOAK_MODE: "ci", RATE: "50", DURATION: "2s", WARMUP_RATE: "0" });
    expectThresholdsHoldExceptLatency(result);
    expect(values(result, "iterations").count).toBe(100);
    await stub?.close();
    const bad = await run("gateway-soak.ts", { SOAK_MODE: "forever" });
    expect(bad.code).toBe(107);
    expect(bad.stderr).toMatch(/SOAK_MODE: must be ci or 24h \(got: forever\)/);
  });
});
