// k6 threshold syntax: `'http_req_duration{status:202}': ['p(95)<50', { threshold: 'p(99)<100', abortOnFail: true }]`.
import { parseDuration } from "./duration.js";
import { configError } from "./errors.js";
import type { MetricType, Registry, Sink, Tags } from "./metrics.js";

export type Operator = "<" | "<=" | ">" | ">=" | "==" | "===" | "!=";

export interface ThresholdSpec {
  /** The expression as written, e.g. "p(99)<100"; the key of the summary's `thresholds` map. */
  source: string;
  aggregation: string;
  operator: Operator;
  target: number;
  abortOnFail: boolean;
  delayAbortEvalMs: number;
}

export interface MetricThresholds {
  /** The key as written in options.thresholds, e.g. "http_req_duration{status:202}". */
  key: string;
  metricName: string;
  /** Submetric tag filter; empty for the whole metric. */
  filter: Tags;
  specs: ThresholdSpec[];
}

export interface ThresholdResult {
  key: string;
  source: string;
  ok: boolean;
  observed: number;
  /** The breach should stop the run now (abortOnFail and past delayAbortEval). */
  abort: boolean;
}

const METRIC_KEY = /^([a-zA-Z_][a-zA-Z0-9_]*)(?:\{(.*)\})?$/;
const EXPRESSION =
  /^\s*(avg|min|max|med|count|rate|value|p\(\s*\d+(?:\.\d+)?\s*\))\s*(<=|>=|===|==|!=|<|>)\s*(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)\s*$/;

/** Aggregation methods k6 accepts per metric type. */
const ALLOWED: Record<MetricType, (aggregation: string) => boolean> = {
  counter: (a) => a === "count" || a === "rate",
  gauge: (a) => a === "value",
  rate: (a) => a === "rate",
  trend: (a) => ["avg", "min", "max", "med"].includes(a) || a.startsWith("p("),
};

export function parseMetricKey(key: string): { metricName: string; filter: Tags } {
  const match = METRIC_KEY.exec(key.trim());
  if (!match)
    throw configError(`options.thresholds: invalid metric ${JSON.stringify(key)}: expected name or name{tag:value}`);
  const filter: Record<string, string> = {};
  if (match[2] !== undefined) {
    for (const part of match[2].split(",")) {
      const colon = part.indexOf(":");
      const tag = part.slice(0, colon).trim();
      const value = part
        .slice(colon + 1)
        .trim()
        .replace(/^(["'])(.*)\1$/, "$2");
      if (colon < 0 || tag === "") {
        throw configError(
          `options.thresholds: invalid submetric ${JSON.stringify(key)}: each tag filter must be tag:value`,
        );
      }
      filter[tag] = value;
    }
  }
  return { metricName: match[1] as string, filter };
}

export function parseExpression(
  source: string,
  where: string,
): Pick<ThresholdSpec, "aggregation" | "operator" | "target"> {
  const match = EXPRESSION.exec(source);
  if (!match) {
    throw configError(
      `${where}: invalid threshold ${JSON.stringify(source)}: expected <aggregation><operator><number>, e.g. "p(95)<200" or "rate<0.01"`,
    );
  }
  const aggregation = (match[1] as string).replace(/\s+/g, "");
  const percentile = /^p\((.*)\)$/.exec(aggregation);
  if (percentile && !(Number(percentile[1]) > 0 && Number(percentile[1]) <= 100)) {
    throw configError(`${where}: invalid threshold ${JSON.stringify(source)}: the percentile must be in (0, 100]`);
  }
  return { aggregation, operator: match[2] as Operator, target: Number(match[3]) };
}

/** Parses `options.thresholds`; any malformed entry is named in the error. */
export function parseThresholds(raw: unknown): MetricThresholds[] {
  if (raw === undefined) return [];
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw configError("options.thresholds: must be an object mapping metric names to lists of thresholds");
  }
  return Object.entries(raw).map(([key, list]) => {
    const where = `options.thresholds[${JSON.stringify(key)}]`;
    if (!Array.isArray(list)) throw configError(`${where}: must be an array of threshold strings or objects`);
    const specs = list.map((entry: unknown, index): ThresholdSpec => {
      const at = `${where}[${index}]`;
      if (typeof entry === "string")
        return { source: entry, ...parseExpression(entry, at), abortOnFail: false, delayAbortEvalMs: 0 };
      if (
        typeof entry !== "object" ||
        entry === null ||
        typeof (entry as { threshold?: unknown }).threshold !== "string"
      ) {
        throw configError(
          `${at}: must be a string or {threshold: string, abortOnFail?: boolean, delayAbortEval?: duration}`,
        );
      }
      const { threshold, abortOnFail, delayAbortEval } = entry as {
        threshold: string;
        abortOnFail?: unknown;
        delayAbortEval?: unknown;
      };
      if (abortOnFail !== undefined && typeof abortOnFail !== "boolean")
        throw configError(`${at}.abortOnFail: must be a boolean`);
      return {
        source: threshold,
        ...parseExpression(threshold, at),
        abortOnFail: abortOnFail === true,
        delayAbortEvalMs: delayAbortEval === undefined ? 0 : parseDuration(delayAbortEval, `${at}.delayAbortEval`),
      };
    });
    return { key, ...parseMetricKey(key), specs };
  });
}

/** Checks, as k6 does before starting, that each metric exists and supports each aggregation. */
export function validateThresholds(thresholds: MetricThresholds[], registry: Registry): void {
  for (const t of thresholds) {
    const metric = registry.get(t.metricName);
    if (!metric) {
      throw configError(
        `options.thresholds[${JSON.stringify(t.key)}]: no metric named ${t.metricName} (define custom metrics in the init context)`,
      );
    }
    for (const spec of t.specs) {
      if (!ALLOWED[metric.type](spec.aggregation)) {
        throw configError(
          `options.thresholds[${JSON.stringify(t.key)}]: ${JSON.stringify(spec.source)} uses ${spec.aggregation}, which a ${metric.type} metric does not support`,
        );
      }
    }
  }
}

function compare(observed: number, operator: Operator, target: number): boolean {
  switch (operator) {
    case "<":
      return observed < target;
    case "<=":
      return observed <= target;
    case ">":
      return observed > target;
    case ">=":
      return observed >= target;
    case "==":
    case "===":
      return observed === target;
    case "!=":
      return observed !== target;
  }
}

export interface EvaluateOptions {
  elapsedMs: number;
  /** During the run k6 skips metrics without samples; the final evaluation includes them. */
  ignoreEmpty: boolean;
}

export function evaluateThresholds(
  thresholds: MetricThresholds[],
  registry: Registry,
  opts: EvaluateOptions,
): ThresholdResult[] {
  const results: ThresholdResult[] = [];
  for (const t of thresholds) {
    const metric = registry.get(t.metricName);
    if (!metric) continue;
    const sink: Sink = metric.select(t.filter);
    if (opts.ignoreEmpty && sink.isEmpty()) continue;
    for (const spec of t.specs) {
      const observed = sink.stat(spec.aggregation, opts.elapsedMs / 1000) ?? Number.NaN;
      const ok = compare(observed, spec.operator, spec.target);
      const abort = !ok && spec.abortOnFail && opts.elapsedMs >= spec.delayAbortEvalMs;
      results.push({ key: t.key, source: spec.source, ok, observed, abort });
    }
  }
  return results;
}
