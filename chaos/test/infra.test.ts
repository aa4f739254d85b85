import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { LintDashboard } from "../../grafana/src/lint.js";
import { panelsWithoutData, queryDashboard } from "../../grafana/src/report/query.js";
import { suiteDashboards } from "../../grafana/src/report/review.js";
import { patchedGateway } from "../../harness/src/components/patched-gateway.js";
import { PrometheusServer } from "../../harness/src/components/prometheus.js";
import { dataStorageOutage, kubeRestart } from "../experiments/infra.js";
import { type ExperimentResult, runExperiment } from "../src/runner.js";

const progress = (line: string) => process.stdout.write(`${line}\n`);
const failed = (r: ExperimentResult) => r.invariants.filter((c) => !c.ok).map((c) => c.name);

/**
 * chaos_fault_active as the run's kept TSDB holds it (what the Chaos dashboard shows): one series
 * per fault, a sample at least every 2.5 s (pushed every second, on a busy machine), 1 inside each
 * of the fault's windows (injection to removal), 0 outside them and last; and the Chaos
 * dashboard over it, every panel with data, a fault-window region for each fault.
 */
async function expectFaultWindows(result: ExperimentResult, dataDir: string): Promise<void> {
  expect(result.notes.filter((n) => n.startsWith("chaos_fault_active"))).toEqual([]);
  const prometheus = await new PrometheusServer().withDataDir(dataDir).start();
  try {
    const series = await prometheus.samples(`chaos_fault_active{experiment="${result.name}"}`, 3_600);
    expect(series.map((s) => s.metric.fault).sort()).toEqual([...new Set(result.faults.map((f) => f.name))].sort());
    // A push is stamped 1 ms after the one before when both fall in the same millisecond.
    const edgeMs = 10;
    for (const { metric, values } of series) {
      const windows = result.faults
        .filter((f) => f.name === metric.fault)
        .map((f) => ({ from: f.injectedAt, to: f.removedAt ?? Number.POSITIVE_INFINITY }));
      const samples = values.map(([t, value]) => ({ ms: Math.round(t * 1000), value }));
      const wrong = samples.filter(({ ms, value }) => {
        const inside = windows.some((w) => ms > w.from + edgeMs && ms < w.to - edgeMs);
        const outside = windows.every((w) => ms < w.from || ms > w.to + edgeMs);
        return (inside && value !== 1) || (outside && value !== 0);
      });
      expect(wrong, `${metric.fault}: samples against its windows ${JSON.stringify(windows)}`).toEqual([]);
      for (const w of windows)
        expect(
          samples.some(({ ms, value }) => ms > w.from && ms < w.to && value === 1),
          metric.fault,
        ).toBe(true);
      expect(samples.at(-1)?.value).toBe(0);
      const gaps = samples.slice(1).map(({ ms }, i) => ms - (samples[i]?.ms ?? 0));
      expect(Math.max(...gaps), metric.fault).toBeLessThanOrEqual(2_500);
    }
    // The Chaos dashboard over the experiment, as the run's review queries it: every panel has
    // data, and its fault-window annotation finds each fault.
    const [chaos] = suiteDashboards("chaos") as [LintDashboard];
    const window = { start: new Date(result.startedAt), end: new Date(result.endedAt ?? Date.now()) };
    const reviewed = await queryDashboard(prometheus, chaos, window);
    expect(panelsWithoutData([reviewed])).toEqual([]);
    expect([...new Set(reviewed.regions.map((r) => r.title))].sort()).toEqual(
      [...new Set(result.faults.map((f) => f.name))].sort(),
    );
  } finally {
    await prometheus.stop();
  }
}

describe("infra/kube-restart", () => {
  it("holds: the index resyncs and creations succeed again after the API server and etcd come back", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "kube-restart-tsdb-"));
    try {
      const result = await runExperiment(kubeRestart({ mode: "ci", seed: 1 }), {
        progress,
        prometheusDataDir: dataDir,
      });
      expect(result.reason).toBe("");
      expect(result.verdict).toBe("Pass");
      expect(result.faults.map((f) => f.kind)).toEqual(["stop-kube-apiserver", "restart-etcd"]);
      expect(result.figures["stop kube-apiserver: index resynced after the removal (ms)"]).toEqual(expect.any(Number));
      expect(result.figures["stop kube-apiserver: first creation (201) after the removal (ms)"]).toEqual(
        expect.any(Number),
      );
      // The two faults' windows, 15 s apart, as the Chaos dashboard draws them.
      await expectFaultWindows(result, dataDir);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  }, 400_000);

  it("catches a gateway whose index gives up when its watch breaks", async () => {
    // Lookups still fall back to the API server, so only the resync shows it.
    const main = patchedGateway("index-no-rewatch", [
      {
        file: "rr-index.ts",
        find: "await sleep(Math.min(250 * 2 ** failures, MAX_BACKOFF_MS), this.stop.signal);",
        replace: "return;",
      },
    ]);
    // A short API server outage is enough (no etcd restart after it): the index gives up on the
    // first failed re-watch.
    const short = kubeRestart({ mode: "ci", seed: 1, durationMs: 1_000 });
    short.faults = short.faults.slice(0, 1);
    const result = await runExperiment(short, { progress, gatewayMain: main });
    expect(result.verdict).toBe("Fail");
    expect(failed(result)).toContain(
      "stop kube-apiserver: the gateway's index follows the API server again (gateway_rr_index_synced = 1) after the removal (ms)",
    );
  }, 400_000);
});

describe("infra/datastorage-outage", () => {
  // 2 s per phase: enough for a missing protection to show, and the suite stays within its budget.
  const shortOutage = () => dataStorageOutage({ mode: "ci", seed: 1, durationMs: 6_000 });

  it("holds: latency near the baseline, audit journaled, every event delivered in order afterwards", async () => {
    const result = await runExperiment(dataStorageOutage({ mode: "ci", seed: 1 }), { progress });
    expect(result.reason).toBe("");
    expect(result.verdict).toBe("Pass");
    expect(result.faults.map((f) => f.name)).toEqual([
      "Data Storage answers 503",
      "Data Storage stalls every write",
      "Data Storage killed",
    ]);
    expect(result.figures["audit journal peak during the faults (bytes)"]).toBeGreaterThan(0);
  }, 400_000);

  it("catches a gateway that drops the batch Data Storage did not take", async () => {
    const main = patchedGateway("audit-drop-on-failure", [
      { file: "audit.ts", find: "if (!fromJournal) this.retryBatch = batch;", replace: "// dropped, not retried" },
    ]);
    const result = await runExperiment(shortOutage(), { progress, gatewayMain: main });
    expect(result.verdict).toBe("Fail");
    expect(failed(result)).toEqual(
      expect.arrayContaining([
        "audit: gateway.signal.received events = signals answered 2xx",
        "gateway.signal.received rows in Data Storage >= signals answered 2xx (none dropped)",
      ]),
    );
  }, 400_000);
});
