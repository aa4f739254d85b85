// Validates a script's `options` into the scenario plan. Only the open-model (arrival-rate)
// executors exist here: the load suites never want a closed model that hides server stalls.
import { parseDuration } from "./duration.js";
import { configError } from "./errors.js";
import { type MetricThresholds, parseThresholds } from "./thresholds.js";

export type Executor = "constant-arrival-rate" | "ramping-arrival-rate";

export interface Stage {
  target: number;
  durationMs: number;
}

export interface ScenarioConfig {
  name: string;
  executor: Executor;
  startTimeMs: number;
  gracefulStopMs: number;
  exec: string;
  env: Record<string, string>;
  tags: Record<string, string>;
  timeUnitMs: number;
  preAllocatedVUs: number;
  maxVUs: number;
  /** constant-arrival-rate: the rate is `startRate` for `stages[0].durationMs`. */
  startRate: number;
  stages: Stage[];
}

export interface RunOptions {
  scenarios: ScenarioConfig[];
  thresholds: MetricThresholds[];
  tags: Record<string, string>;
  summaryTrendStats: string[];
  setupTimeoutMs: number;
  teardownTimeoutMs: number;
  /** The options object as the script exported it (exec.test.options). */
  raw: Record<string, unknown>;
}

const DEFAULT_TREND_STATS = ["avg", "min", "med", "max", "p(90)", "p(95)"];
const CLOSED_MODEL_KEYS = ["vus", "duration", "iterations", "stages"];

type Obj = Record<string, unknown>;

function isObject(value: unknown): value is Obj {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function stringMap(value: unknown, field: string): Record<string, string> {
  if (value === undefined) return {};
  if (!isObject(value) || Object.values(value).some((v) => typeof v !== "string")) {
    throw configError(`${field}: must be an object of string values`);
  }
  return value as Record<string, string>;
}

function number(value: unknown, field: string, rule: (n: number) => boolean, description: string): number {
  if (typeof value !== "number" || !Number.isFinite(value) || !rule(value)) {
    const got = typeof value === "number" ? String(value) : JSON.stringify(value);
    throw configError(`${field}: must be ${description} (got: ${got})`);
  }
  return value;
}

const positive = (n: number) => n > 0;
const nonNegative = (n: number) => n >= 0;
const count = (n: number) => Number.isInteger(n) && n >= 0;

function scenario(name: string, raw: unknown): ScenarioConfig {
  const at = `options.scenarios.${name}`;
  if (!isObject(raw)) throw configError(`${at}: must be an object`);
  const executor = raw.executor;
  if (executor !== "constant-arrival-rate" && executor !== "ramping-arrival-rate") {
    throw configError(
      `${at}.executor: ${JSON.stringify(executor)} is not supported by the embedded runner; use constant-arrival-rate or ramping-arrival-rate`,
    );
  }
  const preAllocatedVUs = number(raw.preAllocatedVUs, `${at}.preAllocatedVUs`, count, "a non-negative integer");
  const maxVUs =
    raw.maxVUs === undefined ? preAllocatedVUs : number(raw.maxVUs, `${at}.maxVUs`, count, "a non-negative integer");
  if (maxVUs < preAllocatedVUs || maxVUs === 0) {
    throw configError(`${at}.maxVUs: must be at least preAllocatedVUs and above 0 (got: ${maxVUs})`);
  }
  if (raw.exec !== undefined && typeof raw.exec !== "string") throw configError(`${at}.exec: must be a function name`);
  let startRate: number;
  let stages: Stage[];
  if (executor === "constant-arrival-rate") {
    startRate = number(raw.rate, `${at}.rate`, positive, "a positive number");
    stages = [{ target: startRate, durationMs: parseDuration(raw.duration, `${at}.duration`) }];
  } else {
    startRate =
      raw.startRate === undefined ? 0 : number(raw.startRate, `${at}.startRate`, nonNegative, "a non-negative number");
    if (!Array.isArray(raw.stages) || raw.stages.length === 0) {
      throw configError(`${at}.stages: must be a non-empty array of {target, duration}`);
    }
    stages = raw.stages.map((stage: unknown, i) => {
      if (!isObject(stage)) throw configError(`${at}.stages[${i}]: must be {target, duration}`);
      return {
        target: number(stage.target, `${at}.stages[${i}].target`, nonNegative, "a non-negative number"),
        durationMs: parseDuration(stage.duration, `${at}.stages[${i}].duration`),
      };
    });
  }
  return {
    name,
    executor,
    startTimeMs: raw.startTime === undefined ? 0 : parseDuration(raw.startTime, `${at}.startTime`),
    gracefulStopMs: raw.gracefulStop === undefined ? 30_000 : parseDuration(raw.gracefulStop, `${at}.gracefulStop`),
    exec: (raw.exec as string | undefined) ?? "default",
    env: stringMap(raw.env, `${at}.env`),
    tags: stringMap(raw.tags, `${at}.tags`),
    timeUnitMs: raw.timeUnit === undefined ? 1000 : parseDuration(raw.timeUnit, `${at}.timeUnit`),
    preAllocatedVUs,
    maxVUs,
    startRate,
    stages,
  };
}

/** Validates the script's options; `cliTags` (--tag) override options.tags as in k6. */
export function normalizeOptions(raw: unknown, cliTags: Record<string, string>): RunOptions {
  const options: Obj = raw === undefined ? {} : isObject(raw) ? raw : {};
  if (raw !== undefined && !isObject(raw)) throw configError("options: must be an object");
  const closed = CLOSED_MODEL_KEYS.filter((k) => options[k] !== undefined);
  if (closed.length > 0) {
    throw configError(
      `options.${closed[0]}: closed-model shortcuts are not supported by the embedded runner; declare options.scenarios with an arrival-rate executor`,
    );
  }
  if (!isObject(options.scenarios) || Object.keys(options.scenarios).length === 0) {
    throw configError(
      "options.scenarios: declare at least one scenario (constant-arrival-rate or ramping-arrival-rate)",
    );
  }
  const trendStats = options.summaryTrendStats ?? DEFAULT_TREND_STATS;
  const validStat = (s: unknown) => typeof s === "string" && /^(avg|min|med|max|count|p\(\d+(\.\d+)?\))$/.test(s);
  if (!Array.isArray(trendStats) || !trendStats.every(validStat)) {
    throw configError("options.summaryTrendStats: must be an array of names like avg, med, p(99), count");
  }
  return {
    scenarios: Object.entries(options.scenarios).map(([name, s]) => scenario(name, s)),
    thresholds: parseThresholds(options.thresholds),
    tags: { ...stringMap(options.tags, "options.tags"), ...cliTags },
    summaryTrendStats: trendStats as string[],
    setupTimeoutMs:
      options.setupTimeout === undefined ? 60_000 : parseDuration(options.setupTimeout, "options.setupTimeout"),
    teardownTimeoutMs:
      options.teardownTimeout === undefined
        ? 60_000
        : parseDuration(options.teardownTimeout, "options.teardownTimeout"),
    raw: options,
  };
}
