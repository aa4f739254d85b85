// k6's metric model: Counter, Gauge, Rate and Trend metrics, each kept per tag set (a series) so
// submetric thresholds ("http_req_duration{status:202}") and Prometheus labels can be derived.
import { build, type Histogram } from "hdr-histogram-js";

export type MetricType = "counter" | "gauge" | "rate" | "trend";
export type ValueType = "default" | "time" | "data";
export type Tags = Readonly<Record<string, string>>;

export interface Sink {
  add(value: number): void;
  merge(other: Sink): void;
  isEmpty(): boolean;
  /** One k6 aggregate ("count", "rate", "value", "avg", "med", "p(99)"...), undefined when the type has none. */
  stat(name: string, durationSec: number): number | undefined;
}

class CounterSink implements Sink {
  count = 0;
  add(value: number): void {
    this.count += value;
  }
  merge(other: Sink): void {
    this.count += (other as CounterSink).count;
  }
  isEmpty(): boolean {
    return this.count === 0;
  }
  stat(name: string, durationSec: number): number | undefined {
    if (name === "count") return this.count;
    if (name === "rate") return durationSec > 0 ? this.count / durationSec : 0;
    return undefined;
  }
}

class GaugeSink implements Sink {
  value = 0;
  min = Number.POSITIVE_INFINITY;
  max = Number.NEGATIVE_INFINITY;
  /** Sample sequence number: merging keeps the latest value across series. */
  seq = -1;
  private static nextSeq = 0;
  add(value: number): void {
    this.value = value;
    this.min = Math.min(this.min, value);
    this.max = Math.max(this.max, value);
    this.seq = GaugeSink.nextSeq++;
  }
  merge(other: Sink): void {
    const o = other as GaugeSink;
    if (o.seq > this.seq) {
      this.value = o.value;
      this.seq = o.seq;
    }
    this.min = Math.min(this.min, o.min);
    this.max = Math.max(this.max, o.max);
  }
  isEmpty(): boolean {
    return this.seq < 0;
  }
  stat(name: string): number | undefined {
    if (name === "value") return this.value;
    if (name === "min") return this.isEmpty() ? 0 : this.min;
    if (name === "max") return this.isEmpty() ? 0 : this.max;
    return undefined;
  }
}

class RateSink implements Sink {
  trues = 0;
  total = 0;
  add(value: number): void {
    this.total++;
    if (value !== 0) this.trues++;
  }
  merge(other: Sink): void {
    this.trues += (other as RateSink).trues;
    this.total += (other as RateSink).total;
  }
  isEmpty(): boolean {
    return this.total === 0;
  }
  stat(name: string): number | undefined {
    if (name === "rate") return this.total > 0 ? this.trues / this.total : 0;
    if (name === "passes") return this.trues;
    if (name === "fails") return this.total - this.trues;
    return undefined;
  }
}

const PERCENTILE = /^p\((\d+(?:\.\d+)?)\)$/;

/**
 * Trend values go into an HDR histogram in micro-units (µs for time trends: 1 µs .. 60 s at 3
 * significant digits); count, sum, min and max are kept exactly beside it.
 */
class TrendSink implements Sink {
  private readonly histogram: Histogram;
  count = 0;
  sum = 0;
  min = Number.POSITIVE_INFINITY;
  max = Number.NEGATIVE_INFINITY;

  constructor(private readonly highestMicro: number) {
    this.histogram = build({
      lowestDiscernibleValue: 1,
      highestTrackableValue: highestMicro,
      numberOfSignificantValueDigits: 3,
      bitBucketSize: 32,
      autoResize: false,
    });
  }

  add(value: number): void {
    this.count++;
    this.sum += value;
    this.min = Math.min(this.min, value);
    this.max = Math.max(this.max, value);
    // Negative values cannot be histogrammed; they count as 0 for percentiles (exact in min/avg).
    this.histogram.recordValue(Math.min(this.highestMicro, Math.max(0, Math.round(value * 1000))));
  }

  merge(other: Sink): void {
    const o = other as TrendSink;
    if (o.count === 0) return;
    this.histogram.add(o.histogram);
    this.count += o.count;
    this.sum += o.sum;
    this.min = Math.min(this.min, o.min);
    this.max = Math.max(this.max, o.max);
  }

  isEmpty(): boolean {
    return this.count === 0;
  }

  stat(name: string): number | undefined {
    if (name === "count") return this.count;
    if (this.count === 0)
      return name === "avg" || name === "min" || name === "max" || name === "med" || PERCENTILE.test(name)
        ? 0
        : undefined;
    if (name === "avg") return this.sum / this.count;
    if (name === "min") return this.min;
    if (name === "max") return this.max;
    if (name === "med") return this.percentile(50);
    const match = PERCENTILE.exec(name);
    return match ? this.percentile(Number(match[1])) : undefined;
  }

  private percentile(p: number): number {
    // The histogram answers with its bucket's upper value; clamp it into the exact observed range.
    const value = this.histogram.getValueAtPercentile(p) / 1000;
    return Math.min(this.max, Math.max(this.min, value));
  }
}

const HIGHEST_MICRO: Record<ValueType, number> = { time: 60_000_000, data: 1e12, default: 1e12 };

function newSink(type: MetricType, contains: ValueType): Sink {
  switch (type) {
    case "counter":
      return new CounterSink();
    case "gauge":
      return new GaugeSink();
    case "rate":
      return new RateSink();
    case "trend":
      return new TrendSink(HIGHEST_MICRO[contains]);
  }
}

/** A stable key for a tag set: the same tags in any order give the same key. */
export function tagsKey(tags: Tags): string {
  return Object.keys(tags)
    .sort()
    .map((k) => `${k}\u0001${tags[k]}`)
    .join("\u0002");
}

/** Each series keeps its own histogram; this many usually means a URL with IDs in it. */
const MANY_SERIES = 1000;

export interface Series {
  tags: Tags;
  sink: Sink;
}

export class Metric {
  readonly series = new Map<string, Series>();
  readonly total: Sink;

  constructor(
    readonly name: string,
    readonly type: MetricType,
    readonly contains: ValueType,
    private readonly registry: Registry,
  ) {
    this.total = newSink(type, contains);
  }

  add(value: number, tags: Tags, key: string = tagsKey(tags)): void {
    if (this.registry.frozen) return;
    let series = this.series.get(key);
    if (!series) {
      series = { tags, sink: newSink(this.type, this.contains) };
      this.series.set(key, series);
      if (this.series.size === MANY_SERIES) {
        process.emitWarning(
          `metric ${this.name} has ${MANY_SERIES} tag combinations; give requests to URLs with IDs a tags.name`,
        );
      }
    }
    series.sink.add(value);
    this.total.add(value);
  }

  /** Series re-keyed by `project`ed tags, merging those that become equal (e.g. without a tag). */
  project(project: (tags: Tags) => Tags): Series[] {
    const merged = new Map<string, Series>();
    for (const { tags, sink } of this.series.values()) {
      const projected = project(tags);
      const key = tagsKey(projected);
      let target = merged.get(key);
      if (!target) {
        target = { tags: projected, sink: newSink(this.type, this.contains) };
        merged.set(key, target);
      }
      target.sink.merge(sink);
    }
    return [...merged.values()];
  }

  /** The merged sink of every series carrying all `filter` tags: a k6 submetric. */
  select(filter: Tags): Sink {
    const entries = Object.entries(filter);
    if (entries.length === 0) return this.total;
    const merged = newSink(this.type, this.contains);
    for (const { tags, sink } of this.series.values()) {
      if (entries.every(([k, v]) => tags[k] === v)) merged.merge(sink);
    }
    return merged;
  }
}

const METRIC_NAME = /^[a-zA-Z_][a-zA-Z0-9_]{0,127}$/;

export class Registry {
  private readonly metrics = new Map<string, Metric>();
  /** Set when the run is over: late samples of interrupted iterations are not counted. */
  frozen = false;

  define(name: string, type: MetricType, contains: ValueType = "default"): Metric {
    if (!METRIC_NAME.test(name)) {
      throw new Error(
        `invalid metric name ${JSON.stringify(name)}: use letters, digits and _ (at most 128 characters)`,
      );
    }
    const existing = this.metrics.get(name);
    if (existing) {
      if (existing.type !== type || existing.contains !== contains) {
        throw new Error(
          `metric ${name} already exists as a ${existing.type} (${existing.contains}), cannot redefine it as a ${type} (${contains})`,
        );
      }
      return existing;
    }
    const metric = new Metric(name, type, contains, this);
    this.metrics.set(name, metric);
    return metric;
  }

  get(name: string): Metric | undefined {
    return this.metrics.get(name);
  }

  all(): Metric[] {
    return [...this.metrics.values()];
  }
}
