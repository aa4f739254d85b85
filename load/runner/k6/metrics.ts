// k6/metrics for the embedded runner: custom Counter, Gauge, Rate and Trend.
import type { Metric as EngineMetric, MetricType } from "../engine/metrics.js";
import { currentContext, registry, sampleTags } from "../engine/runtime.js";

abstract class CustomMetric {
  readonly name: string;
  private readonly metric: EngineMetric;

  constructor(name: string, type: MetricType, isTime = false) {
    if (currentContext()?.iteration) {
      throw new Error(`metric ${name}: custom metrics must be created in the init context (module scope), as in k6`);
    }
    this.metric = registry.define(name, type, isTime ? "time" : "default");
    this.name = name;
  }

  add(value: number | boolean, tags?: Record<string, string>): void {
    const n = typeof value === "boolean" ? Number(value) : value;
    if (typeof n !== "number" || Number.isNaN(n))
      throw new TypeError(`${this.name}.add: value must be a number or boolean`);
    this.metric.add(n, sampleTags(currentContext(), tags));
  }
}

export class Counter extends CustomMetric {
  constructor(name: string, isTime = false) {
    super(name, "counter", isTime);
  }
}

export class Gauge extends CustomMetric {
  constructor(name: string, isTime = false) {
    super(name, "gauge", isTime);
  }
}

export class Rate extends CustomMetric {
  constructor(name: string, isTime = false) {
    super(name, "rate", isTime);
  }
}

export class Trend extends CustomMetric {
  constructor(name: string, isTime = false) {
    super(name, "trend", isTime);
  }
}

export default { Counter, Gauge, Rate, Trend };
