// Prometheus remote-write output under the names k6's experimental-prometheus-rw output uses:
// counters k6_<name>_total, gauges k6_<name>, rates k6_<name>_rate, trends one gauge per stat
// (k6_<name>_p99, _p95, _med...; time trends in seconds). Values are cumulative since the start,
// labels are the sample tags (testid, scenario, status, method, name...) except url. Pushed every interval and at the end.
import { compress } from "snappyjs";
import { request } from "undici";
import { parseDuration } from "./duration.js";
import type { Metric, Registry } from "./metrics.js";
import { encodeWriteRequest, type TimeSeries } from "./prom-write-request.js";

export interface RemoteWriteConfig {
  url: string;
  pushIntervalMs: number;
  trendStats: string[];
}

/** All the trend stats the dashboards read (k6's own default is only p(99)). */
const DEFAULT_TREND_STATS = ["p(99)", "p(95)", "p(90)", "med", "avg", "min", "max", "count"];

/** Reads k6's K6_PROMETHEUS_RW_* variables; `url` from the --out argument wins over the variable. */
export function remoteWriteConfig(env: Record<string, string | undefined>, url?: string): RemoteWriteConfig {
  const stats = env.K6_PROMETHEUS_RW_TREND_STATS;
  return {
    url: url || env.K6_PROMETHEUS_RW_SERVER_URL || "http://localhost:9090/api/v1/write",
    pushIntervalMs: parseDuration(env.K6_PROMETHEUS_RW_PUSH_INTERVAL ?? "5s", "K6_PROMETHEUS_RW_PUSH_INTERVAL"),
    trendStats: stats ? stats.split(",").map((s) => s.trim()) : DEFAULT_TREND_STATS,
  };
}

/** "p(99)" → "p99", "p(99.9)" → "p999", as k6 names the series. */
function statSuffix(stat: string): string {
  const p = /^p\((.*)\)$/.exec(stat);
  return p ? `p${(p[1] as string).replace(".", "")}` : stat;
}

/** The raw URL stays out of Prometheus (one series per URL); `name` groups requests instead. */
const DROPPED_LABELS = new Set(["url"]);

const sanitize = (name: string) => name.replace(/[^a-zA-Z0-9_]/g, "_").replace(/^(\d)/, "_$1");

function seriesOf(metric: Metric, trendStats: string[]): { suffix: string; stat: string }[] {
  switch (metric.type) {
    case "counter":
      return [{ suffix: "_total", stat: "count" }];
    case "gauge":
      return [{ suffix: "", stat: "value" }];
    case "rate":
      return [{ suffix: "_rate", stat: "rate" }];
    case "trend":
      return trendStats.map((stat) => ({ suffix: `_${statSuffix(stat)}`, stat }));
  }
}

export function toTimeSeries(registry: Registry, trendStats: string[], timestampMs: number): TimeSeries[] {
  const out: TimeSeries[] = [];
  for (const metric of registry.all()) {
    const toSeconds = metric.contains === "time" ? 1 / 1000 : 1;
    const series = metric.project((tags) =>
      Object.fromEntries(Object.entries(tags).filter(([k, v]) => v !== "" && !DROPPED_LABELS.has(k))),
    );
    for (const { tags, sink } of series) {
      if (sink.isEmpty()) continue;
      const labels = Object.entries(tags).map(([k, v]): [string, string] => [sanitize(k), v]);
      for (const { suffix, stat } of seriesOf(metric, trendStats)) {
        const value = (sink.stat(stat, 0) ?? Number.NaN) * (stat === "count" ? 1 : toSeconds);
        const all: [string, string][] = [["__name__", `k6_${metric.name}${suffix}`], ...labels];
        all.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
        out.push({ labels: all, samples: [{ value, timestampMs }] });
      }
    }
  }
  return out;
}

/** One remote-write request (protobuf, snappy); throws unless Prometheus took it. */
export async function writeSeries(url: string, series: TimeSeries[], userAgent: string): Promise<void> {
  const res = await request(url, {
    method: "POST",
    headers: {
      "Content-Type": "application/x-protobuf",
      "Content-Encoding": "snappy",
      "X-Prometheus-Remote-Write-Version": "0.1.0",
      "User-Agent": userAgent,
    },
    body: compress(encodeWriteRequest(series)),
    headersTimeout: 10_000,
    bodyTimeout: 10_000,
  });
  const text = await res.body.text();
  if (res.statusCode >= 300) throw new Error(`HTTP ${res.statusCode}: ${text.trim()}`);
}

export class RemoteWriteOutput {
  private timer: NodeJS.Timeout | undefined;
  private lastTimestamp = 0;
  private pending: Promise<void> = Promise.resolve();

  constructor(
    private readonly config: RemoteWriteConfig,
    private readonly registry: Registry,
    private readonly warn: (message: string) => void,
  ) {}

  start(): void {
    this.timer = setInterval(() => {
      this.pending = this.pending.then(() => this.flush());
    }, this.config.pushIntervalMs);
    this.timer.unref();
  }

  /** Stops the timer and pushes the final values. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.pending;
    await this.flush();
  }

  private async flush(): Promise<void> {
    // Prometheus drops samples that are not newer than the last one of their series.
    const timestampMs = Math.max(Date.now(), this.lastTimestamp + 1);
    this.lastTimestamp = timestampMs;
    const series = toTimeSeries(this.registry, this.config.trendStats, timestampMs);
    if (series.length === 0) return;
    try {
      await writeSeries(this.config.url, series, "k6-embedded-runner");
    } catch (err) {
      this.warn(`remote write to ${this.config.url} failed: ${(err as Error).message}`);
    }
  }
}
