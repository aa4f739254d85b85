// The k6 surface of the embedded runner: setup/teardown, sync and async requests, checks in
// groups, custom metrics, per-scenario env, __VU/__ITER, and handleSummary receiving k6's data shape.
import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { scratchDir } from "../../harness/src/paths.js";
import type { SummaryData } from "../lib/k6-summary.js";
import { type CliRun, runCli } from "./support/run-cli.js";
import { startTimedServer, type TimedServer } from "./support/timed-server.js";

describe("k6 API surface and handleSummary data", () => {
  let server: TimedServer;
  let run: CliRun;
  let data: SummaryData;
  let exported: { metrics: Record<string, Record<string, unknown>> };
  const exportDir = scratchDir("summary-export");

  beforeAll(async () => {
    server = await startTimedServer(() => 1);
    const exportPath = join(exportDir, "export.json");
    run = await runCli("load/test/fixtures/k6-surface.ts", { TARGET: server.url }, ["--summary-export", exportPath]);
    data = run.summary as SummaryData;
    exported = JSON.parse(readFileSync(exportPath, "utf8"));
  });
  afterAll(async () => {
    await server.close();
    rmSync(exportDir, { recursive: true, force: true });
  });

  it("runs setup, the iterations and teardown against the server, and prints handleSummary's stdout", () => {
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toBe("custom summary\n");
    expect(server.requests[0]).toBe("GET /setup");
    expect(server.requests.at(-1)).toBe("POST /teardown");
    expect(server.requests.filter((r) => r === "POST /signal")).toHaveLength(40);
  });

  it("hands handleSummary k6's metric entries", () => {
    expect(data.metrics.http_req_duration).toMatchObject({ type: "trend", contains: "time" });
    expect(Object.keys(data.metrics.http_req_duration?.values ?? {})).toEqual([
      "avg",
      "min",
      "med",
      "max",
      "p(90)",
      "p(95)",
      "p(99)",
      "count",
    ]);
    expect(data.metrics.http_reqs).toMatchObject({ type: "counter", contains: "default", values: { count: 42 } });
    expect(data.metrics.http_req_failed).toMatchObject({ type: "rate", values: { rate: 0, passes: 0, fails: 42 } });
    expect(data.metrics.iterations?.values.count).toBe(40);
    expect(data.metrics.vus_max).toMatchObject({ type: "gauge" });
    expect(data.metrics.data_sent).toMatchObject({ type: "counter", contains: "data" });
    expect(data.metrics.fixture_hits?.values.count).toBe(40);
    expect(data.metrics.fixture_good).toMatchObject({ type: "rate", values: { rate: 1 } });
    expect(data.metrics.fixture_body_size?.values.max).toBe(2);
    expect(data.metrics.fixture_last_vu?.values.value).toBeGreaterThan(0);
  });

  it("reports thresholds as {ok} per expression, submetrics included", () => {
    expect(data.metrics["http_req_duration{status:200}"]).toMatchObject({
      type: "trend",
      thresholds: { "p(95)<5000": { ok: true } },
    });
    expect(data.metrics["http_req_duration{status:200}"]?.values.count).toBe(42);
    expect(data.metrics["http_req_duration{scenario:main}"]?.values.count).toBe(40);
    expect(data.metrics.checks?.thresholds).toEqual({ "rate==1": { ok: true } });
    expect(data.metrics["http_req_duration{expected_response:true}"]?.values.count).toBe(42);
  });

  it("reports checks per group in root_group", () => {
    expect(data.root_group).toMatchObject({ name: "", path: "", id: "d41d8cd98f00b204e9800998ecf8427e", checks: [] });
    const [answers] = data.root_group.groups;
    expect(answers?.path).toBe("::answers");
    expect(answers?.checks.map((c) => [c.name, c.passes, c.fails])).toEqual([
      ["status is 200", 40, 0],
      ["setup data arrived", 40, 0],
      ["scenario env is visible", 40, 0],
      ["VU ids agree", 40, 0],
      ["iteration counters agree", 40, 0],
    ]);
  });

  it("reports the run's state, options and setup data", () => {
    expect(data.state.testRunDurationMs).toBeGreaterThanOrEqual(1000);
    expect(data.state.testRunDurationMs).toBeLessThan(5000);
    expect(data.options.summaryTrendStats).toContain("p(99)");
    expect(data.setup_data).toEqual({ token: "status-200" });
  });

  it("writes --summary-export in k6's legacy flat format (threshold value true = crossed)", () => {
    expect(exported.metrics.http_reqs).toMatchObject({ count: 42 });
    expect(exported.metrics.checks).toMatchObject({
      passes: 200,
      fails: 0,
      value: 1,
      thresholds: { "rate==1": false },
    });
    expect(exported.metrics["http_req_duration{status:200}"]).toMatchObject({ thresholds: { "p(95)<5000": false } });
  });
});
