// `task load:<scenario>`: start the local stack (or use TARGET), drive a k6
// script at it (k6 when on PATH, else the embedded runner), reconcile every
// 2xx against the real state, write results/load/<run-id>/ and exit non-zero
// when a threshold or an invariant failed.
//   npx tsx load/suite/run.ts <1000rps|burst|latency|soak> [--duration 2m] [--rate 1000] [--target URL] [--seed N] [--mode ci|24h]
import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { reviewProblems, reviewRun } from "../../grafana/src/report/review.js";
import { parseFlags, runCli, UsageError } from "../../harness/src/cli-flags.js";
import type { ConfigTree } from "../../harness/src/components/gateway.js";
import { type Check, type GeneratorCounts, reconcile } from "../../harness/src/invariants.js";
import { repoRoot } from "../../harness/src/paths.js";
import { cpuSeconds, rssBytes } from "../../harness/src/proc-stats.js";
import { LocalStack, type StartedLocalStack } from "../../harness/src/stack.js";
import { durationMs } from "../lib/duration.ts";
import { NAMESPACES } from "../lib/traffic.ts";
import { type LoadSummary, markdownReport, type ThresholdResult } from "./report.js";

interface Scenario {
  script: string;
  /** Script env from the options (only what was given; the script has defaults). */
  env(o: Options): Record<string, string>;
  /** Gateway settings for this scenario on the local stack. */
  gateway: ConfigTree;
  /** Upper bound of the gateway's resident memory during the run. */
  maxRssMiB: number;
  /** How long the measured scenario runs, when the scenario has a fixed duration. */
  measuredSeconds?: (o: Options) => number;
  /** For the soak: how much the gateway's resident memory may grow from start to end. */
  maxRssGrowthMiB?: number;
  /** The scenario whose figures the report shows (the script's thresholds select it by tag). */
  measured: string;
}

interface Options {
  duration?: string;
  rate?: string;
  target?: string;
  seed?: string;
  mode?: string;
}

// One generator is one client: the per-client rate limit is off except where
// the scenario is about load protection.
const NO_RATE_LIMIT = { rateLimit: { enabled: false } };
const SCENARIOS: Record<string, Scenario> = {
  "1000rps": {
    script: "gateway-1000rps.ts",
    env: (o) => ({ ...(o.duration && { DURATION: o.duration }), ...(o.rate && { RATE: o.rate }) }),
    gateway: { ...NO_RATE_LIMIT, backpressure: { maxInFlight: 2000 } },
    maxRssMiB: 768,
    measured: "sustained",
    measuredSeconds: (o) => (durationMs(o.duration ?? "2m") ?? 0) / 1000,
  },
  burst: {
    script: "gateway-burst.ts",
    env: (o) => ({ ...(o.duration && { HOLD: o.duration }), ...(o.rate && { PEAK_RATE: o.rate }) }),
    gateway: { rateLimit: { enabled: true, requestsPerSecond: 2500, burst: 2500 }, backpressure: { maxInFlight: 100 } },
    maxRssMiB: 1024,
    measured: "burst",
  },
  latency: {
    script: "gateway-latency.ts",
    env: (o) => ({ ...(o.duration && { NORMAL_DURATION: o.duration }), ...(o.rate && { NORMAL_RATE: o.rate }) }),
    gateway: { ...NO_RATE_LIMIT, backpressure: { maxInFlight: 100 } },
    maxRssMiB: 1024,
    measured: "normal",
  },
  soak: {
    script: "gateway-soak.ts",
    env: (o) => ({
      ...(o.duration && { DURATION: o.duration }),
      ...(o.rate && { RATE: o.rate }),
      ...(o.mode && { SOAK_MODE: o.mode }),
    }),
    gateway: { ...NO_RATE_LIMIT, backpressure: { maxInFlight: 2000 } },
    maxRssMiB: 768,
    measured: "soak",
    measuredSeconds: (o) => (durationMs(o.duration ?? (o.mode === "24h" ? "24h" : "2m")) ?? 0) / 1000,
    maxRssGrowthMiB: 128,
  },
};

const USAGE = `usage: run.ts <${Object.keys(SCENARIOS).join("|")}> [--duration 2m] [--rate N] [--target http://host:port] [--seed N] [--mode ci|24h]`;

function parseArgs(argv: string[]): { name: string; scenario: Scenario; opts: Options } {
  const [name, ...rest] = argv;
  const scenario = name ? SCENARIOS[name] : undefined;
  if (!name || !scenario) throw new UsageError(`unknown scenario '${name ?? ""}'`);
  const opts: Options = {};
  const set = (key: keyof Options) => (value: string) => {
    opts[key] = value;
  };
  parseFlags(rest, {
    "--duration": [/^\d+(ms|s|m|h)$/, "a duration like 30s, 2m or 1h", set("duration")],
    "--rate": [/^[1-9]\d{0,5}$/, "a positive whole number of alerts per second", set("rate")],
    "--target": [/^https?:\/\/[^\s/]+(\/.*)?$/, "a URL like http://127.0.0.1:8080", set("target")],
    "--seed": [/^\d{1,9}$/, "a non-negative whole number", set("seed")],
    "--mode": [/^(ci|24h)$/, "ci or 24h", set("mode")],
  });
  return { name, scenario, opts };
}

interface ProcessWatch {
  /** [epoch ms, bytes] once a second: start, end, peak, and the soak's growth over its measured phase. */
  rss: Array<[number, number]>;
  cpuSeconds: number;
  /** Most Redis clients connected at once (the gateway's pool, the accounting's own). */
  peakRedisClients: number;
}

/**
 * Samples the gateway's memory once a second, its CPU time over the run, and
 * Redis's connected clients: what the soak scenario watches for growth or
 * exhaustion.
 */
function watchGateway(stack: StartedLocalStack | undefined): { stop(): Promise<ProcessWatch> } {
  const pid = stack?.gateway?.process.pid;
  const redis = stack?.redis.client();
  const w: ProcessWatch = { rss: [], cpuSeconds: 0, peakRedisClients: 0 };
  const cpuStart = pid ? cpuSeconds(pid) : 0;
  const sample = async () => {
    if (!pid) return;
    const rss = rssBytes(pid);
    if (rss > 0) {
      w.rss.push([Date.now(), rss]);
      w.cpuSeconds = cpuSeconds(pid) - cpuStart;
    }
    const info = await redis?.info("clients").catch(() => "");
    w.peakRedisClients = Math.max(w.peakRedisClients, Number(/connected_clients:(\d+)/.exec(info ?? "")?.[1] ?? 0));
  };
  const timer = setInterval(() => void sample(), 1000);
  return {
    stop: async () => {
      clearInterval(timer);
      await sample();
      redis?.disconnect();
      return w;
    },
  };
}

function hasK6(): boolean {
  return spawnSync("k6", ["version"], { stdio: "ignore" }).status === 0;
}

/** Runs the script with k6 or the embedded runner; resolves with the exit code. */
function runScript(
  script: string,
  env: Record<string, string>,
  testid: string,
  remoteWrite: string | undefined,
): Promise<{ code: number; runner: string }> {
  const envArgs = Object.entries(env).flatMap(([k, v]) => ["-e", `${k}=${v}`]);
  const k6 = hasK6();
  const [command, args] = k6
    ? [
        "k6",
        [
          "run",
          ...envArgs,
          "--tag",
          `testid=${testid}`,
          ...(remoteWrite ? ["-o", "experimental-prometheus-rw"] : []),
          script,
        ],
      ]
    : [
        process.execPath,
        [
          "--import",
          "tsx",
          join(repoRoot, "load", "runner", "cli.ts"),
          "run",
          ...envArgs,
          "--tag",
          `testid=${testid}`,
          ...(remoteWrite ? ["-o", `experimental-prometheus-rw=${remoteWrite}`] : []),
          "--progress",
          script,
        ],
      ];
  const child = spawn(command as string, args as string[], {
    cwd: repoRoot,
    stdio: "inherit",
    env: {
      ...process.env,
      ...(remoteWrite && {
        K6_PROMETHEUS_RW_SERVER_URL: remoteWrite,
        K6_PROMETHEUS_RW_TREND_STATS: "p(50),p(95),p(99),max",
      }),
    },
  });
  return new Promise((resolve) =>
    child.once("exit", (code) => resolve({ code: code ?? 1, runner: k6 ? "k6" : "embedded (load/runner)" })),
  );
}

type K6Metric = { values: Record<string, number>; thresholds?: Record<string, { ok: boolean }> };

function thresholdResults(metrics: Record<string, K6Metric>): ThresholdResult[] {
  return Object.entries(metrics).flatMap(([metric, m]) =>
    Object.entries(m.thresholds ?? {}).map(([expression, { ok }]) => {
      const agg = /^\s*([a-z]+(?:\(\d+(?:\.\d+)?\))?)/.exec(expression)?.[1] ?? "";
      return { metric, expression, ok, observed: m.values[agg] ?? null };
    }),
  );
}

function generatorCounts(metrics: Record<string, K6Metric>): GeneratorCounts | undefined {
  const c = (name: string) => metrics[name]?.values.count;
  if (c("signals_created") === undefined && c("signals_duplicate") === undefined) return undefined;
  return {
    created: c("signals_created") ?? 0,
    duplicate: c("signals_duplicate") ?? 0,
    stormAggregated: c("signals_storm_aggregated") ?? 0,
    unanswered: c("signals_unanswered") ?? 0,
  };
}

/** Quantile of the gateway's own request durations on the signal routes, over `window`. */
const signalRouteQuantile = (q: number, fn: "rate" | "increase", window: string) =>
  `histogram_quantile(${q}, sum by (le) (${fn}(gateway_http_request_duration_seconds_bucket{route=~".*signals.*"}[${window}])))`;

/** Seconds to milliseconds with one decimal. */
const msOf = (seconds: number) => Math.round(seconds * 10_000) / 10;

/**
 * The gateway's own view of the run, scraped by Prometheus: processing p99 per outcome and
 * refusals per reason. Beside the generator's figures it tells where a latency tail comes from.
 */
async function gatewayView(
  stack: StartedLocalStack,
  seconds: number,
  at: Date,
): Promise<Record<string, number | null>> {
  const range = `${Math.max(1, Math.ceil(seconds))}s`;
  const query = (promql: string) => stack.prometheus.query(promql, at).catch(() => []);
  const figures: Record<string, number | null> = {};
  const [http] = await query(signalRouteQuantile(0.99, "increase", range));
  figures["gateway HTTP p99, signal routes, all answers (ms)"] =
    http && Number.isFinite(http.value) ? msOf(http.value) : null;
  const p99 = await query(
    `histogram_quantile(0.99, sum by (le, outcome) (increase(gateway_processing_duration_seconds_bucket[${range}])))`,
  );
  for (const s of p99
    .filter((s) => Number.isFinite(s.value))
    .sort((a, b) => (a.metric.outcome ?? "").localeCompare(b.metric.outcome ?? "")))
    figures[`gateway processing p99, ${s.metric.outcome} (ms)`] = msOf(s.value);
  for (const s of await query(`sum by (reason) (increase(gateway_requests_rejected_total[${range}]))`))
    figures[`gateway refusals, ${s.metric.reason}`] = Math.round(s.value);
  return figures;
}

const BACKGROUND_NICE = 10;

const mib = (bytes: number | undefined) => Math.round((bytes ?? 0) / 1048576);

async function main(): Promise<number> {
  const { name, scenario, opts } = parseArgs(process.argv.slice(2));
  const startedAt = new Date();
  const runId = `${name}-${startedAt
    .toISOString()
    .replace(/[-:]/g, "")
    .replace(/\.\d+Z$/, "Z")}`;
  const dir = join(repoRoot, "results", "load", runId);
  const k6Dir = join(dir, "k6");
  mkdirSync(k6Dir, { recursive: true });
  const notes: string[] = [];
  process.stdout.write(`load run ${runId}: results in ${dir}\n`);

  let summary: LoadSummary;
  const stack = opts.target
    ? undefined
    : await new LocalStack()
        .withNamespaces(Object.fromEntries(NAMESPACES.map((ns) => [ns, { environment: "production" }])))
        .withGatewayConfig(scenario.gateway)
        // Kept in the run folder, so `task grafana:up RUN=<run-id>` can open the run later.
        .withPrometheusDataDir(join(dir, "prometheus"))
        .start();
  try {
    const target = opts.target ?? stack?.gateway?.getUrl() ?? "";
    if (stack) {
      writeFileSync(join(dir, "stack.json"), JSON.stringify(stack.endpoints(), null, 2));
      // Generator, gateway, Redis and the API server come first on this shared machine; the
      // scraper and the audit sink would run on other nodes, so they take the CPU that is left.
      for (const p of [stack.prometheus.process, stack.dataStorage.process, stack.dataStorage.postgres.process])
        p.setNice(BACKGROUND_NICE);
      notes.push(
        `Prometheus, the Data Storage stand-in and PostgreSQL ran at nice ${BACKGROUND_NICE} (they share the generator's cores here)`,
      );
    }
    const env = {
      TARGET: target,
      TESTID: runId,
      RESULTS_DIR: k6Dir,
      ...(opts.seed && { SEED: opts.seed }),
      ...scenario.env(opts),
    };
    const watch = watchGateway(stack);
    const run = await runScript(
      join(repoRoot, "load", "scripts", scenario.script),
      env,
      runId,
      stack?.prometheus.remoteWriteUrl(),
    );
    const proc = await watch.stop();
    const rssValues = proc.rss.map(([, bytes]) => bytes);
    const firstRss = rssValues[0] ?? 0;
    const lastRss = rssValues.at(-1) ?? 0;
    const peakRss = rssValues.reduce((peak, bytes) => Math.max(peak, bytes), 0); // a 24 h soak has 86 400 samples
    const runSeconds = (Date.now() - startedAt.getTime()) / 1000;
    const end = new Date();

    let metrics: Record<string, K6Metric> = {};
    try {
      metrics = (JSON.parse(readFileSync(join(k6Dir, "summary.json"), "utf8")) as { metrics: Record<string, K6Metric> })
        .metrics;
    } catch (err) {
      notes.push(`no k6 summary (${(err as Error).message}): the runner failed before handleSummary`);
    }
    const thresholds = thresholdResults(metrics);
    // Figures of the measured scenario where the script tags one (a warm-up never counts).
    const v = (metric: string, stat: string, tags = "") => {
      const scoped = metrics[`${metric}{scenario:${scenario.measured}${tags ? `,${tags}` : ""}}`];
      return (scoped ?? metrics[tags ? `${metric}{${tags}}` : metric])?.values[stat] ?? null;
    };
    const figures: Record<string, number | null> = {
      "requests (whole run, warm-up included)": metrics.http_reqs?.values.count ?? null,
      "requests in the measured scenario": v("http_req_duration", "count"),
      "achieved rate in the measured scenario (req/s)": scenario.measuredSeconds
        ? Math.round(((v("http_req_duration", "count") ?? 0) / scenario.measuredSeconds(opts)) * 10) / 10
        : null,
      "iterations dropped": v("dropped_iterations", "count") ?? 0,
      "http_req_failed rate": v("http_req_failed", "rate"),
      "latency p50 (ms)": v("http_req_duration", "med"),
      "latency p95 (ms)": v("http_req_duration", "p(95)"),
      "latency p99 (ms)": v("http_req_duration", "p(99)"),
      "latency max (ms)": v("http_req_duration", "max"),
      "202 latency p95 (ms)": v("http_req_duration", "p(95)", "status:202"),
      "signals created": v("signals_created", "count"),
      "signals deduplicated": v("signals_duplicate", "count"),
      "signals storm-aggregated": v("signals_storm_aggregated", "count"),
      "gateway RSS at start (MiB)": stack ? mib(firstRss) : null,
      "gateway RSS at end (MiB)": stack ? mib(lastRss) : null,
      "gateway RSS peak (MiB)": stack ? mib(peakRss) : null,
      "gateway CPU (cores, average over the run)": stack
        ? Math.round((proc.cpuSeconds / runSeconds) * 100) / 100
        : null,
      "Redis connected clients (peak)": stack ? proc.peakRedisClients : null,
      ...(stack && (await gatewayView(stack, runSeconds, end))),
    };

    const invariants: Check[] = [];
    if (stack) {
      invariants.push({
        name: "gateway resident memory stays bounded (MiB)",
        expected: `<= ${scenario.maxRssMiB}`,
        observed: Math.round(peakRss / 1048576),
        ok: peakRss <= scenario.maxRssMiB * 1048576,
      });
      if (scenario.maxRssGrowthMiB !== undefined) {
        // From the start of the measured phase (it ends the run): the warm-up's growth is not a leak.
        const measuredFrom = end.getTime() - (scenario.measuredSeconds?.(opts) ?? runSeconds) * 1000;
        const baseline = proc.rss.find(([at]) => at >= measuredFrom)?.[1] ?? firstRss;
        const growth = mib(lastRss - baseline);
        invariants.push({
          name: "gateway resident memory growth over the measured phase (MiB)",
          expected: `<= ${scenario.maxRssGrowthMiB}`,
          observed: growth,
          ok: growth <= scenario.maxRssGrowthMiB,
        });
      }
      invariants.push({
        name: "gateway process still running after the run",
        expected: "running",
        observed: stack.gateway?.process.running ? "running" : "exited",
        ok: !!stack.gateway?.process.running,
      });
      const counts = generatorCounts(metrics);
      // Coalesced status writes trail a busy run (thousands of counts at the gateway's write budget):
      // reconcile waits while they drain and stops once nothing moves for 30 s.
      if (counts) invariants.push(...(await reconcile(stack, counts)));
      else
        invariants.push({
          name: "generator counted outcomes (signals_* counters)",
          expected: "present",
          observed: "missing",
          ok: false,
        });
    } else {
      notes.push(
        "accounting skipped: TARGET points at a gateway this run did not start, so its Redis, API server and Data Storage are not known",
      );
    }

    const pass = run.code === 0 && thresholds.every((t) => t.ok) && invariants.every((c) => c.ok);
    summary = {
      scenario: name,
      runId,
      runner: run.runner,
      target,
      startedAt: startedAt.toISOString(),
      durationSeconds: Math.round((end.getTime() - startedAt.getTime()) / 1000),
      exitCode: run.code,
      pass,
      figures,
      thresholds,
      invariants,
      notes,
    };
  } finally {
    await stack?.stop();
  }
  // The review reads the TSDB the stopped Prometheus left in the run folder, as grafana:report does.
  if (stack) {
    writeFileSync(join(dir, "summary.json"), `${JSON.stringify(summary, null, 2)}\n`);
    process.stdout.write("review: the dashboards over the run, report.html checked in Chromium\n");
    summary.review = await reviewRun({ suite: "load", id: runId, dir });
    for (const problem of reviewProblems(summary.review)) process.stdout.write(`REVIEW: ${problem}\n`);
  }
  writeFileSync(join(dir, "summary.json"), `${JSON.stringify(summary, null, 2)}\n`);
  writeFileSync(join(dir, "report.md"), markdownReport(summary));
  const latest = join(repoRoot, "results", "load", "latest");
  rmSync(latest, { force: true });
  symlinkSync(runId, latest);
  for (const c of summary.invariants.filter((i) => !i.ok))
    process.stdout.write(`INVARIANT FAILED: ${c.name}: expected ${c.expected}, observed ${c.observed}\n`);
  for (const t of summary.thresholds.filter((i) => !i.ok))
    process.stdout.write(`THRESHOLD FAILED: ${t.metric} ${t.expression} (observed ${t.observed})\n`);
  process.stdout.write(`${summary.pass ? "PASS" : "FAIL"}: report ${join(dir, "report.md")}\n`);
  return summary.pass ? 0 : summary.exitCode !== 0 ? summary.exitCode : 1;
}

await runCli(main, USAGE);
