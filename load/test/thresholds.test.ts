// k6 threshold syntax on the embedded runner: parsing, evaluation (whole metrics and submetrics),
// abortOnFail, and the CLI's exit code 99 when a threshold is crossed.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RunnerError } from "../runner/engine/errors.js";
import { Registry } from "../runner/engine/metrics.js";
import { evaluateThresholds, parseThresholds, validateThresholds } from "../runner/engine/thresholds.js";
import { runCli } from "./support/run-cli.js";
import { startTimedServer, type TimedServer } from "./support/timed-server.js";

function registryWithSamples(): Registry {
  const r = new Registry();
  const duration = r.define("http_req_duration", "trend", "time");
  const failed = r.define("http_req_failed", "rate");
  const reqs = r.define("http_reqs", "counter");
  r.define("dropped_iterations", "counter");
  const vus = r.define("vus", "gauge");
  // 100 duplicates (202) at 1..100 ms in scenario "normal", 10 creations (201) at 500 ms in "burst".
  for (let i = 1; i <= 100; i++) {
    const tags = { status: "202", scenario: "normal", expected_response: "true" };
    duration.add(i, tags);
    failed.add(0, tags);
    reqs.add(1, tags);
  }
  for (let i = 0; i < 10; i++) {
    const tags = { status: "201", scenario: "burst", expected_response: i < 9 ? "true" : "false" };
    duration.add(500, tags);
    failed.add(i < 9 ? 0 : 1, tags);
    reqs.add(1, tags);
  }
  vus.add(7, {});
  return r;
}

function outcome(thresholds: Record<string, unknown>, elapsedMs = 10_000): Record<string, boolean> {
  const parsed = parseThresholds(thresholds);
  const registry = registryWithSamples();
  validateThresholds(parsed, registry);
  const results = evaluateThresholds(parsed, registry, { elapsedMs, ignoreEmpty: false });
  return Object.fromEntries(results.map((r) => [`${r.key} ${r.source}`, r.ok]));
}

describe("threshold parsing", () => {
  it("reads strings, objects and submetric keys", () => {
    const [duration, sub] = parseThresholds({
      http_req_duration: ["p(99)<100", { threshold: "p(95) <= 50", abortOnFail: true, delayAbortEval: "10s" }],
      'http_req_duration{status:202, scenario:"normal"}': ["avg<20"],
    });
    expect(duration?.specs).toEqual([
      {
        source: "p(99)<100",
        aggregation: "p(99)",
        operator: "<",
        target: 100,
        abortOnFail: false,
        delayAbortEvalMs: 0,
      },
      {
        source: "p(95) <= 50",
        aggregation: "p(95)",
        operator: "<=",
        target: 50,
        abortOnFail: true,
        delayAbortEvalMs: 10_000,
      },
    ]);
    expect(sub).toMatchObject({ metricName: "http_req_duration", filter: { status: "202", scenario: "normal" } });
  });

  it.each([
    [{ http_req_duration: ["p99<100"] }, /invalid threshold "p99<100"/],
    [{ http_req_duration: ["p(0)<1"] }, /percentile must be in \(0, 100\]/],
    [{ http_req_duration: "p(99)<1" }, /must be an array/],
    [{ "http_req_duration{status}": ["avg<1"] }, /each tag filter must be tag:value/],
    [{ http_req_duration: [{ threshold: "avg<1", delayAbortEval: "soon" }] }, /delayAbortEval: must be a duration/],
  ])("names the bad entry: %j", (thresholds, message) => {
    expect(() => parseThresholds(thresholds)).toThrow(message);
  });

  it("rejects unknown metrics and aggregations the metric type lacks", () => {
    const registry = registryWithSamples();
    expect(() => validateThresholds(parseThresholds({ nope: ["count<1"] }), registry)).toThrow(/no metric named nope/);
    expect(() => validateThresholds(parseThresholds({ http_reqs: ["p(95)<1"] }), registry)).toThrow(
      /uses p\(95\), which a counter metric does not support/,
    );
    expect(() => validateThresholds(parseThresholds({ http_req_failed: ["count<1"] }), registry)).toThrow(RunnerError);
  });
});

describe("threshold evaluation", () => {
  it("evaluates every aggregation on whole metrics", () => {
    expect(
      outcome({
        http_req_duration: ["p(99)<1000", "p(95)<50", "avg<100", "med<=56", "max<500", "min>=1"],
        http_req_failed: ["rate<0.001", "rate<0.01"],
        http_reqs: ["count<200", "rate>10", "count>=110"],
        dropped_iterations: ["count<1"],
        vus: ["value==7"],
      }),
    ).toEqual({
      "http_req_duration p(99)<1000": true,
      "http_req_duration p(95)<50": false, // the 10 slow creations are the top 9 %
      "http_req_duration avg<100": true, // (5050 + 5000) / 110 = 91.4
      "http_req_duration med<=56": true, // the 55th of 110 values
      "http_req_duration max<500": false,
      "http_req_duration min>=1": true,
      "http_req_failed rate<0.001": false, // 1 of 110
      "http_req_failed rate<0.01": true,
      "http_reqs count<200": true,
      "http_reqs rate>10": true, // 110 in 10 s
      "http_reqs count>=110": true,
      "dropped_iterations count<1": true, // no samples: count 0
      "vus value==7": true,
    });
  });

  it("evaluates submetrics by status, scenario and expected_response", () => {
    expect(
      outcome({
        "http_req_duration{status:202}": ["p(95)<100", "max<=100"],
        "http_req_duration{scenario:burst}": ["p(99)<100"],
        "http_req_duration{expected_response:true}": ["max<600"],
        "http_req_failed{scenario:normal}": ["rate==0"],
        "http_req_failed{scenario:burst}": ["rate<0.05"],
      }),
    ).toEqual({
      "http_req_duration{status:202} p(95)<100": true,
      "http_req_duration{status:202} max<=100": true,
      "http_req_duration{scenario:burst} p(99)<100": false,
      "http_req_duration{expected_response:true} max<600": true,
      "http_req_failed{scenario:normal} rate==0": true,
      "http_req_failed{scenario:burst} rate<0.05": false,
    });
  });

  it("asks for an abort only for abortOnFail thresholds past their delayAbortEval", () => {
    const parsed = parseThresholds({
      http_req_duration: [{ threshold: "max<100", abortOnFail: true, delayAbortEval: "30s" }, "p(99)<10"],
      http_req_failed: [{ threshold: "rate<0.001", abortOnFail: true }],
    });
    const registry = registryWithSamples();
    const aborts = (elapsedMs: number) =>
      evaluateThresholds(parsed, registry, { elapsedMs, ignoreEmpty: true })
        .filter((r) => r.abort)
        .map((r) => `${r.key} ${r.source}`);
    expect(aborts(5_000)).toEqual(["http_req_failed rate<0.001"]);
    expect(aborts(31_000)).toEqual(["http_req_duration max<100", "http_req_failed rate<0.001"]);
  });

  it("skips metrics without samples while running but not at the end (as k6)", () => {
    const parsed = parseThresholds({ checks: ["rate>0.99"] });
    const registry = new Registry();
    registry.define("checks", "rate");
    expect(evaluateThresholds(parsed, registry, { elapsedMs: 1000, ignoreEmpty: true })).toEqual([]);
    expect(evaluateThresholds(parsed, registry, { elapsedMs: 1000, ignoreEmpty: false })[0]?.ok).toBe(false);
  });
});

describe("thresholds through the CLI", () => {
  let server: TimedServer;
  beforeAll(async () => {
    server = await startTimedServer(() => 20);
  });
  afterAll(() => server.close());

  it("exits 99 when a threshold is crossed and reports it in the summary", async () => {
    const run = await runCli("load/test/fixtures/open-model.ts", {
      TARGET: server.url,
      RATE: "50",
      DURATION: "2s",
      P99_THRESHOLD: "p(99)<5",
    });
    expect(run.code, run.stderr).toBe(99);
    expect(run.stderr).toMatch(/threshold crossed: http_req_duration: p\(99\)<5/);
    expect(run.summary?.metrics.http_req_duration?.thresholds).toEqual({ "p(99)<5": { ok: false } });
  });

  it("aborts the run early with exit 99 on an abortOnFail threshold", async () => {
    const run = await runCli("load/test/fixtures/open-model.ts", {
      TARGET: server.url,
      RATE: "50",
      DURATION: "60s",
      P99_THRESHOLD: "p(99)<5",
      ABORT_ON_FAIL: "1",
    });
    expect(run.code, run.stderr).toBe(99);
    expect(run.stderr).toMatch(/abortOnFail stops the test/);
    expect(run.summary?.state.testRunDurationMs).toBeLessThan(10_000);
  });

  it("refuses an invalid threshold before running, with exit 104 and the entry named", async () => {
    const before = server.arrivals.length;
    const run = await runCli("load/test/fixtures/open-model.ts", { TARGET: server.url, P99_THRESHOLD: "p99 < 5" });
    expect(run.code).toBe(104);
    expect(run.stderr).toMatch(/options\.thresholds\["http_req_duration"\]\[0\]: invalid threshold "p99 < 5"/);
    expect(server.arrivals).toHaveLength(before);
  });
});
