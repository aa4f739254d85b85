// One test run, in k6's order: init (import the script), setup(), the scenarios, teardown(),
// thresholds, handleSummary(). Returns the exit code k6 would return.

import { Console } from "node:console";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { type SummaryData, textSummary } from "../../lib/k6-summary.js";
import { ArrivalRateExecutor } from "./arrival-rate-executor.js";
import { formatDuration } from "./duration.js";
import { configError, EXIT, RunnerError } from "./errors.js";
import { closeHttp, configureHttp } from "./http-client.js";
import { normalizeOptions, type RunOptions } from "./options.js";
import { Progress } from "./progress.js";
import { RemoteWriteOutput, remoteWriteConfig } from "./remote-write.js";
import { builtin, contexts, currentContext, registry, test } from "./runtime.js";
import { legacySummaryExport, summaryData } from "./summary.js";
import { stopSyncHttp } from "./sync-http.js";
import { evaluateThresholds, type ThresholdResult, validateThresholds } from "./thresholds.js";

export interface RunArgs {
  scriptPath: string;
  env: Record<string, string>;
  tags: Record<string, string>;
  summaryExport?: string;
  /** Push metrics with Prometheus remote write; `url` overrides K6_PROMETHEUS_RW_SERVER_URL. */
  remoteWrite?: { url?: string };
  quiet: boolean;
  /** Print the progress line even when stderr is not a terminal. */
  progress: boolean;
}

type ScriptModule = Record<string, unknown>;

const startedAt = performance.now();
function log(level: "INFO" | "WARN" | "ERRO", message: string): void {
  const secs = String(Math.floor((performance.now() - startedAt) / 1000)).padStart(4, "0");
  process.stderr.write(`${level}[${secs}] ${message}\n`);
}

/** Script errors are printed once per distinct message, so a failing iteration cannot flood the terminal. */
function errorReporter() {
  const seen = new Map<string, number>();
  return {
    report(scenario: string, err: unknown): void {
      const message = err instanceof Error ? (err.stack ?? err.message) : String(err);
      const n = (seen.get(message) ?? 0) + 1;
      seen.set(message, n);
      if (n === 1) log("ERRO", `scenario ${scenario}: uncaught error in iteration: ${message}`);
    },
    summary(): void {
      for (const [message, n] of seen)
        if (n > 1) log("ERRO", `(${n} iterations failed with: ${message.split("\n")[0]})`);
    },
  };
}

/** The k6 globals: __ENV, __VU, __ITER (per VU via the async context), open(), console on stderr. */
function installGlobals(scriptDir: string): void {
  const define = (name: string, get: () => unknown) =>
    Object.defineProperty(globalThis, name, { get, configurable: true });
  define("__ENV", () => currentContext()?.iteration?.scenario.env ?? test.env);
  define("__VU", () => currentContext()?.iteration?.vu.idInTest ?? 0);
  define("__ITER", () => currentContext()?.iteration?.vu.iterationInScenario ?? 0);
  Object.assign(globalThis, {
    open(path: string, mode?: "b"): string | ArrayBuffer {
      if (currentContext()?.iteration) throw new Error("open() is only available in the init context");
      const data = readFileSync(resolve(scriptDir, path));
      return mode === "b"
        ? data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength)
        : data.toString("utf8");
    },
    // k6 logs console output to stderr; stdout stays for the summary.
    console: new Console({ stdout: process.stderr, stderr: process.stderr }),
  });
}

async function importScript(path: string): Promise<ScriptModule> {
  try {
    return (await import(pathToFileURL(resolve(path)).href)) as ScriptModule;
  } catch (err) {
    const detail = err instanceof Error ? (err.stack ?? err.message) : String(err);
    throw new RunnerError(`could not load ${path}: ${detail}`, EXIT.scriptException);
  }
}

/** Runs setup()/teardown() with k6's timeout; setup data travels as JSON, as in k6. */
async function runPhase(name: "setup" | "teardown", fn: unknown, args: unknown[], timeoutMs: number): Promise<unknown> {
  if (typeof fn !== "function") return undefined;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const code = name === "setup" ? EXIT.setupTimeout : EXIT.teardownTimeout;
      reject(new RunnerError(`${name}() did not finish within ${formatDuration(timeoutMs)}`, code));
    }, timeoutMs);
  });
  try {
    const result = await Promise.race([contexts.run({ groupPath: "" }, () => fn(...args)), timeout]);
    return result === undefined ? undefined : JSON.parse(JSON.stringify(result));
  } catch (err) {
    if (err instanceof RunnerError) throw err;
    throw new RunnerError(
      `${name}() failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`,
      EXIT.scriptException,
    );
  } finally {
    clearTimeout(timer);
  }
}

/** Writes what handleSummary() returned ('stdout', 'stderr' or file paths), or the default text summary. */
async function writeSummary(handleSummary: unknown, data: SummaryData): Promise<void> {
  if (typeof handleSummary !== "function") {
    process.stdout.write(textSummary(data));
    return;
  }
  let outputs: unknown;
  try {
    outputs = await contexts.run({ groupPath: "" }, () => handleSummary(data));
  } catch (err) {
    log(
      "ERRO",
      `handleSummary() failed, printing the default summary: ${err instanceof Error ? err.message : String(err)}`,
    );
    process.stdout.write(textSummary(data));
    return;
  }
  if (typeof outputs !== "object" || outputs === null) {
    log("WARN", "handleSummary() must return an object mapping 'stdout', 'stderr' or file paths to contents");
    return;
  }
  for (const [target, content] of Object.entries(outputs)) {
    if (typeof content !== "string" && !(content instanceof ArrayBuffer)) {
      log("WARN", `handleSummary() output ${JSON.stringify(target)}: content must be a string or ArrayBuffer`);
      continue;
    }
    const bytes = typeof content === "string" ? content : Buffer.from(content);
    if (target === "stdout") process.stdout.write(bytes);
    else if (target === "stderr") process.stderr.write(bytes);
    else {
      mkdirSync(dirname(resolve(target)), { recursive: true });
      writeFileSync(target, bytes);
    }
  }
}

function validateScenarios(module: ScriptModule, options: RunOptions): void {
  for (const s of options.scenarios) {
    if (typeof module[s.exec] !== "function") {
      throw configError(`options.scenarios.${s.name}.exec: the script exports no function named ${s.exec}`);
    }
  }
  validateThresholds(options.thresholds, registry);
}

function sampleVUs(executors: ArrivalRateExecutor[]): void {
  const active = executors.filter((e) => e.state === "running" || e.state === "draining");
  builtin.vus.add(
    active.reduce((n, e) => n + e.allocatedVUs, 0),
    test.tags,
  );
  builtin.vusMax.add(test.counters.vusInitialized, test.tags);
}

async function execute(args: RunArgs): Promise<number> {
  const processEnv = Object.fromEntries(
    Object.entries(process.env).filter((e): e is [string, string] => e[1] !== undefined),
  );
  test.env = { ...processEnv, ...args.env };
  installGlobals(dirname(resolve(args.scriptPath)));
  const module = await importScript(args.scriptPath);
  const options = normalizeOptions(module.options, args.tags);
  test.tags = options.tags;
  test.options = options.raw;
  validateScenarios(module, options);
  configureHttp(
    Math.max(
      16,
      options.scenarios.reduce((n, s) => n + s.maxVUs, 0),
    ),
  );

  const errors = errorReporter();
  let nextVuId = 1;
  let setupData: unknown;
  const executors = options.scenarios.map(
    (config) =>
      new ArrivalRateExecutor(config, {
        exec: (data) => (module[config.exec] as (data: unknown) => unknown)(data),
        get setupData() {
          return setupData;
        },
        nextVuId: () => nextVuId++,
        reportError: errors.report,
      }),
  );
  let abortReason: RunnerError | undefined;
  test.abort = (reason) => {
    abortReason ??= reason;
    log("WARN", reason.message);
    for (const e of executors) e.stop();
  };
  const onSignal = () => {
    test.abort(
      new RunnerError("interrupted: stopping the test (press Ctrl-C again to quit at once)", EXIT.externalAbort),
    );
    process.once("SIGINT", () => process.exit(EXIT.externalAbort));
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);

  setupData = await runPhase("setup", module.setup, [], options.setupTimeoutMs);

  const remoteWrite = args.remoteWrite
    ? new RemoteWriteOutput(remoteWriteConfig(process.env, args.remoteWrite.url), registry, (m) => log("WARN", m))
    : undefined;
  const plannedMs = Math.max(
    ...options.scenarios.map((s) => s.startTimeMs + s.stages.reduce((n, st) => n + st.durationMs, 0)),
  );
  const progress =
    !args.quiet && (args.progress || process.stderr.isTTY)
      ? new Progress(executors, process.stderr, plannedMs)
      : undefined;
  test.startMs = performance.now();
  remoteWrite?.start();
  progress?.start();
  sampleVUs(executors);
  const vuSampler = setInterval(() => sampleVUs(executors), 1000);
  // k6 evaluates thresholds every 2 s during the run so abortOnFail can stop it early.
  const thresholdTicker = setInterval(() => {
    const elapsedMs = performance.now() - test.startMs;
    const breached = evaluateThresholds(options.thresholds, registry, { elapsedMs, ignoreEmpty: true }).filter(
      (r) => r.abort,
    );
    if (breached.length > 0) {
      const which = [...new Set(breached.map((r) => `${r.key}: ${r.source}`))].join(", ");
      test.abort(new RunnerError(`thresholds crossed (${which}); abortOnFail stops the test`, EXIT.thresholdsFailed));
    }
  }, 2000);

  await Promise.all(executors.map((e) => e.run(test.startMs)));
  clearInterval(thresholdTicker);
  clearInterval(vuSampler);
  progress?.stop();
  sampleVUs(executors);
  const durationMs = performance.now() - test.startMs;

  let teardownError: RunnerError | undefined;
  try {
    await runPhase("teardown", module.teardown, [setupData], options.teardownTimeoutMs);
  } catch (err) {
    teardownError = err as RunnerError;
    log("ERRO", teardownError.message);
  }
  registry.frozen = true;
  errors.summary();

  const thresholdResults: ThresholdResult[] = evaluateThresholds(options.thresholds, registry, {
    elapsedMs: durationMs,
    ignoreEmpty: false,
  });
  const data = summaryData({ options, thresholdResults, durationMs, setupData });
  await writeSummary(module.handleSummary, data);
  if (args.summaryExport) {
    mkdirSync(dirname(resolve(args.summaryExport)), { recursive: true });
    writeFileSync(args.summaryExport, `${JSON.stringify(legacySummaryExport(data), null, 2)}\n`);
  }
  await remoteWrite?.stop();
  await closeHttp();
  await stopSyncHttp();

  const crossed = thresholdResults.filter((r) => !r.ok);
  for (const r of crossed) log("ERRO", `threshold crossed: ${r.key}: ${r.source} (observed ${r.observed})`);
  if (abortReason) return abortReason.exitCode;
  if (crossed.length > 0) return EXIT.thresholdsFailed;
  if (teardownError) return teardownError.exitCode;
  if (test.failure) {
    log("ERRO", `test marked as failed: ${test.failure}`);
    return EXIT.markedAsFailed;
  }
  return EXIT.ok;
}

export async function runTest(args: RunArgs): Promise<number> {
  try {
    return await execute(args);
  } catch (err) {
    if (err instanceof RunnerError) {
      log("ERRO", err.message);
      return err.exitCode;
    }
    log("ERRO", `runner failure: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    return EXIT.scriptException;
  }
}
