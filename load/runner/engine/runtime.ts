// State shared by the k6 API modules (load/runner/k6/*) and the engine: the metric registry,
// the test-wide settings and, per async call chain, the VU iteration being executed.
import { AsyncLocalStorage } from "node:async_hooks";
import type { RunnerError } from "./errors.js";
import { GroupTree } from "./groups.js";
import { Registry, type Tags } from "./metrics.js";
import type { ScenarioConfig } from "./options.js";

export const registry = new Registry();

/** k6's built-in metrics, plus two the embedded runner adds to make scheduling lag visible. */
export const builtin = {
  httpReqs: registry.define("http_reqs", "counter"),
  httpReqDuration: registry.define("http_req_duration", "trend", "time"),
  httpReqWaiting: registry.define("http_req_waiting", "trend", "time"),
  httpReqFailed: registry.define("http_req_failed", "rate"),
  /** Response end minus the iteration's *intended* start: latency free of coordinated omission. */
  httpReqDurationIntended: registry.define("http_req_duration_intended", "trend", "time"),
  iterations: registry.define("iterations", "counter"),
  iterationDuration: registry.define("iteration_duration", "trend", "time"),
  /** How late each iteration started against its arrival-rate schedule (the runner's own lag). */
  iterationStartLag: registry.define("iteration_start_lag", "trend", "time"),
  droppedIterations: registry.define("dropped_iterations", "counter"),
  vus: registry.define("vus", "gauge"),
  vusMax: registry.define("vus_max", "gauge"),
  checks: registry.define("checks", "rate"),
  groupDuration: registry.define("group_duration", "trend", "time"),
  dataSent: registry.define("data_sent", "counter", "data"),
  dataReceived: registry.define("data_received", "counter", "data"),
};

export const groups = new GroupTree();

export interface VU {
  idInTest: number;
  idInInstance: number;
  iterationInInstance: number;
  iterationInScenario: number;
  /** exec.vu.tags: added to every sample of this VU. */
  tags: Record<string, string>;
}

export interface ScenarioRuntime {
  config: ScenarioConfig;
  /** __ENV as this scenario's VUs see it. */
  env: Record<string, string>;
  /** Test tags + scenario tags + {scenario: name}. */
  tags: Tags;
  startUnixMs: number;
  progress(): number;
  /** Set once the scenario was interrupted: its late samples are discarded. */
  stopped: boolean;
  /** Aborts the scenario's in-flight requests when its graceful stop runs out. */
  signal: AbortSignal;
}

export interface Iteration {
  vu: VU;
  scenario: ScenarioRuntime;
  /** Index of the iteration within the scenario (exec.scenario.iterationInTest). */
  inScenario: number;
  /** performance.now() at which the arrival-rate schedule wanted this iteration to start. */
  intendedStartMs: number;
}

export interface ExecContext {
  groupPath: string;
  iteration?: Iteration;
}

export const contexts = new AsyncLocalStorage<ExecContext>();

export function currentContext(): ExecContext | undefined {
  return contexts.getStore();
}

export const test = {
  env: {} as Record<string, string>,
  tags: {} as Tags,
  options: {} as Record<string, unknown>,
  /** performance.now() at the start of the scenarios (0 before). */
  startMs: 0,
  counters: { iterationsCompleted: 0, iterationsInterrupted: 0, vusActive: 0, vusInitialized: 0 },
  /** Marks the run failed without stopping it (exec.test.fail). */
  failure: undefined as string | undefined,
  /** Stops the run with the given exit code; installed by the engine. */
  abort: (_reason: RunnerError): void => {
    throw new Error("the test is not running");
  },
};

/** The tags of a sample taken in `ctx`: test, scenario, VU and group tags, then `extra`. */
export function sampleTags(ctx: ExecContext | undefined, extra?: Tags): Record<string, string> {
  const iteration = ctx?.iteration;
  return {
    ...(iteration ? iteration.scenario.tags : test.tags),
    ...iteration?.vu.tags,
    ...(ctx?.groupPath ? { group: ctx.groupPath } : {}),
    ...extra,
  };
}
