// k6/execution for the embedded runner: scenario, vu, instance and test information.
import { EXIT, IterationAborted, RunnerError } from "../engine/errors.js";
import { currentContext, type Iteration, test as run } from "../engine/runtime.js";

function iteration(what: string): Iteration {
  const it = currentContext()?.iteration;
  if (!it)
    throw new Error(
      `${what}: only available while a VU runs an iteration (not in the init context, setup or teardown)`,
    );
  return it;
}

export const scenario = {
  get name() {
    return iteration("exec.scenario.name").scenario.config.name;
  },
  get executor() {
    return iteration("exec.scenario.executor").scenario.config.executor;
  },
  get startTime() {
    return iteration("exec.scenario.startTime").scenario.startUnixMs;
  },
  get progress() {
    return iteration("exec.scenario.progress").scenario.progress();
  },
  get iterationInInstance() {
    return iteration("exec.scenario.iterationInInstance").inScenario;
  },
  get iterationInTest() {
    return iteration("exec.scenario.iterationInTest").inScenario;
  },
};

export const vu = {
  get idInInstance() {
    return currentContext()?.iteration?.vu.idInInstance ?? 0;
  },
  get idInTest() {
    return currentContext()?.iteration?.vu.idInTest ?? 0;
  },
  get iterationInInstance() {
    return iteration("exec.vu.iterationInInstance").vu.iterationInInstance;
  },
  get iterationInScenario() {
    return iteration("exec.vu.iterationInScenario").vu.iterationInScenario;
  },
  get tags() {
    return iteration("exec.vu.tags").vu.tags;
  },
  get metrics() {
    const tags = iteration("exec.vu.metrics").vu.tags;
    return { tags, metadata: {} };
  },
};

export const instance = {
  get iterationsInterrupted() {
    return run.counters.iterationsInterrupted;
  },
  get iterationsCompleted() {
    return run.counters.iterationsCompleted;
  },
  get vusActive() {
    return run.counters.vusActive;
  },
  get vusInitialized() {
    return run.counters.vusInitialized;
  },
  get currentTestRunDuration() {
    return run.startMs === 0 ? 0 : performance.now() - run.startMs;
  },
};

export const test = {
  abort(message?: string): never {
    run.abort(new RunnerError(`test aborted by the script${message ? `: ${message}` : ""}`, EXIT.scriptAborted));
    throw new IterationAborted(message ?? "test aborted");
  },
  fail(message?: string): void {
    run.failure = message ?? "exec.test.fail() called";
  },
  get options() {
    return run.options;
  },
};

export default { scenario, vu, instance, test };
