// Metrics reach a real Prometheus over remote write (protobuf + snappy) under k6's names and labels.
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PrometheusServer, type StartedPrometheusServer } from "../../harness/src/components/prometheus.js";
import { type CliRun, runCli, values } from "./support/run-cli.js";
import { startTimedServer, type TimedServer } from "./support/timed-server.js";

describe("Prometheus remote-write output", () => {
  const testid = `rw-${randomUUID().slice(0, 8)}`;
  let prometheus: StartedPrometheusServer;
  let server: TimedServer;
  let run: CliRun;
  const one = async (promql: string) => {
    const [sample, ...rest] = await prometheus.waitForSeries(promql);
    expect(rest, `${promql} should be one series`).toHaveLength(0);
    return sample as NonNullable<typeof sample>;
  };

  beforeAll(async () => {
    [prometheus, server] = await Promise.all([new PrometheusServer().start(), startTimedServer(() => 5)]);
    run = await runCli(
      "load/test/fixtures/open-model.ts",
      { TARGET: server.url, RATE: "50", DURATION: "3s" },
      ["--out", `experimental-prometheus-rw=${prometheus.remoteWriteUrl()}`, "--tag", `testid=${testid}`],
      { K6_PROMETHEUS_RW_PUSH_INTERVAL: "1s" },
    );
  }, 90_000);
  afterAll(async () => {
    await Promise.all([prometheus?.stop(), server?.close()]);
  });

  it("pushes counters as k6_<name>_total with the run's labels", async () => {
    expect(run.code, run.stderr).toBe(0);
    const reqs = await one(`k6_http_reqs_total{testid="${testid}"}`);
    expect(reqs.value).toBe(150);
    expect(reqs.metric).toMatchObject({ scenario: "open", method: "GET", status: "200", expected_response: "true" });
    expect((await one(`k6_iterations_total{testid="${testid}"}`)).value).toBe(values(run, "iterations").count);
  });

  it("pushes trends as one gauge per stat, in seconds, matching the summary", async () => {
    const summary = values(run, "http_req_duration");
    const p99 = await one(`k6_http_req_duration_p99{testid="${testid}"}`);
    expect(p99.value).toBeCloseTo((summary["p(99)"] as number) / 1000, 4);
    for (const stat of ["p95", "p90", "med", "avg", "min", "max"]) {
      await one(`k6_http_req_duration_${stat}{testid="${testid}"}`);
    }
    expect((await one(`k6_http_req_duration_count{testid="${testid}"}`)).value).toBe(150);
  });

  it("pushes rates as k6_<name>_rate and gauges as k6_<name>", async () => {
    expect((await one(`k6_http_req_failed_rate{testid="${testid}"}`)).value).toBe(0);
    await one(`k6_vus{testid="${testid}"}`);
    await one(`k6_vus_max{testid="${testid}"}`);
  });

  it("pushed during the run, not only at the end", async () => {
    const samples = await one(`count_over_time(k6_http_reqs_total{testid="${testid}"}[5m])`);
    expect(samples.value).toBeGreaterThanOrEqual(3);
  });
});
