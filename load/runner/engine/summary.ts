// Builds k6's handleSummary() data and the --summary-export file from the final metrics.
import type { SummaryData, SummaryMetric } from "../../lib/k6-summary.js";
import type { Metric, Sink } from "./metrics.js";
import type { RunOptions } from "./options.js";
import { groups, registry } from "./runtime.js";
import type { ThresholdResult } from "./thresholds.js";

const STATS: Record<Metric["type"], string[]> = {
  counter: ["count", "rate"],
  gauge: ["value", "min", "max"],
  rate: ["rate", "passes", "fails"],
  trend: [],
};

function entry(metric: Metric, sink: Sink, durationSec: number, trendStats: string[]): SummaryMetric {
  const values: Record<string, number> = {};
  for (const stat of metric.type === "trend" ? trendStats : STATS[metric.type])
    values[stat] = sink.stat(stat, durationSec) ?? 0;
  return { type: metric.type, contains: metric.contains, values };
}

export interface SummaryInput {
  options: RunOptions;
  thresholdResults: ThresholdResult[];
  durationMs: number;
  setupData: unknown;
}

export function summaryData({ options, thresholdResults, durationMs, setupData }: SummaryInput): SummaryData {
  const sec = durationMs / 1000;
  const stats = options.summaryTrendStats;
  const metrics: Record<string, SummaryMetric> = {};
  for (const m of registry.all()) if (!m.total.isEmpty()) metrics[m.name] = entry(m, m.total, sec, stats);
  // Metrics and submetrics with thresholds are reported even without samples, as in k6.
  for (const t of options.thresholds) {
    const metric = registry.get(t.metricName) as Metric;
    metrics[metric.name] ??= entry(metric, metric.total, sec, stats);
    const e = metrics[t.key] ?? entry(metric, metric.select(t.filter), sec, stats);
    e.thresholds = Object.fromEntries(
      thresholdResults.filter((r) => r.key === t.key).map((r) => [r.source, { ok: r.ok }]),
    );
    metrics[t.key] = e;
  }
  const duration = registry.get("http_req_duration") as Metric;
  if (metrics.http_req_duration) {
    metrics["http_req_duration{expected_response:true}"] ??= entry(
      duration,
      duration.select({ expected_response: "true" }),
      sec,
      stats,
    );
  }
  return {
    metrics,
    root_group: groups.summary(),
    options: { summaryTrendStats: stats, summaryTimeUnit: "", noColor: !process.stdout.isTTY },
    state: {
      isStdOutTTY: Boolean(process.stdout.isTTY),
      isStdErrTTY: Boolean(process.stderr.isTTY),
      testRunDurationMs: durationMs,
    },
    setup_data: setupData,
  };
}

/** The `--summary-export` file: k6's legacy flat format (threshold value true = crossed). */
export function legacySummaryExport(data: SummaryData): unknown {
  const metrics: Record<string, unknown> = {};
  for (const [name, m] of Object.entries(data.metrics)) {
    const flat: Record<string, unknown> =
      m.type === "rate" ? { passes: m.values.passes, fails: m.values.fails, value: m.values.rate } : { ...m.values };
    if (m.thresholds) {
      flat.thresholds = Object.fromEntries(Object.entries(m.thresholds).map(([source, t]) => [source, !t.ok]));
    }
    metrics[name] = flat;
  }
  return { root_group: data.root_group, metrics };
}
