// Benchmark of the gateway's duplicate path against a raw floor (floor-server.ts: fastify + one
// Redis HINCRBY on the same Redis), at the same open-model arrival rates, in one run. Floor and
// gateway alternate at each rate so the noise of a shared machine falls on both.
// Then, unmeasured, CPU profiles of the gateway (over its inspector, only while the load runs) on
// the duplicate path at the top rate and on the creation path (every alert new), summed per
// stage of the request path (stages.ts).
// Writes results/bench/<run-id>/{bench.json,bench.md,profiles/*.cpuprofile} and points
// results/bench/latest at it.
//   npx tsx load/bench/duplicate-path.ts [--rates 200,500,1000] [--duration 15s] [--create-rate 100]
import { spawn } from "node:child_process";
import { mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { join } from "node:path";
import { StartedRedisServer } from "../../harness/src/components/redis.js";
import { type CpuProfile, Inspector, stageTimes } from "../../harness/src/cpu-profile.js";
import { repoRoot } from "../../harness/src/paths.js";
import { eventually } from "../../harness/src/poll.js";
import { freePort } from "../../harness/src/ports.js";
import { httpReady } from "../../harness/src/probes.js";
import { coresOver, cpuSnapshot } from "../../harness/src/proc-stats.js";
import { LocalStack } from "../../harness/src/stack.js";
import { ManagedProcess } from "../../harness/src/supervisor.js";
import type { SummaryData } from "../lib/k6-summary.ts";
import { BENCH_ALERT_BODY, BENCH_NAMESPACE } from "./alert.ts";
import {
  type BenchResult,
  type BenchRun,
  compare,
  markdown,
  type Process,
  type ProfileRun,
  type Server,
} from "./report.js";
import { GATEWAY_STAGES } from "./stages.ts";

const SIGNAL_PATH = "/api/v1/signals/prometheus";
const SCRIPT = join(repoRoot, "load", "bench", "duplicate.ts");
const RUNNER = join(repoRoot, "load", "runner", "cli.ts");
// Logged by duplicate.ts in setup() and teardown(): the edges of the load for the CPU readings.
const LOAD_STARTING = "bench: load starting";
const LOAD_FINISHED = "bench: load finished";
// Between runs, wait (bounded) until the servers are idle again, so one run's tail
// (audit flushes, status writes, GC) is not billed to the next.
const IDLE_CORES = 0.05;
const SETTLE_TIMEOUT_MS = 15_000;

const USAGE = "usage: duplicate-path.ts [--rates 200,500,1000] [--duration 15s] [--create-rate 100]";

class UsageError extends Error {}

interface Settings {
  rates: number[];
  duration: string;
  durationSeconds: number;
  /** Arrival rate of the creation-path profile: every alert a first sighting. */
  createRate: number;
}

function parseArgs(argv: string[]): Settings {
  const settings: Settings = { rates: [200, 500, 1000], duration: "15s", durationSeconds: 15, createRate: 100 };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = argv[++i];
    if (flag !== "--rates" && flag !== "--duration" && flag !== "--create-rate")
      throw new UsageError(`unknown flag '${flag}'`);
    if (value === undefined || value === "") throw new UsageError(`${flag}: missing value`);
    if (flag === "--create-rate") {
      if (!/^[1-9]\d{0,3}$/.test(value))
        throw new UsageError(`--create-rate: must be a whole number of alerts per second, 1..9999 (got: ${value})`);
      settings.createRate = Number(value);
    } else if (flag === "--rates") {
      if (!/^[1-9]\d{0,4}(,[1-9]\d{0,4})*$/.test(value)) {
        throw new UsageError(`--rates: must be positive whole numbers below 100000, comma-separated (got: ${value})`);
      }
      settings.rates = value.split(",").map(Number);
    } else {
      const m = /^(\d+)(s|m)$/.exec(value);
      if (!m || Number(m[1]) === 0)
        throw new UsageError(`--duration: must be a duration like 10s or 2m (got: ${value})`);
      settings.duration = value;
      settings.durationSeconds = Number(m[1]) * (m[2] === "m" ? 60 : 1);
    }
  }
  return settings;
}

/** One benchmark alert; resolves with the status code. */
async function post(url: string): Promise<number> {
  const res = await fetch(`${url}${SIGNAL_PATH}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: BENCH_ALERT_BODY,
  });
  await res.arrayBuffer();
  return res.status;
}

/** Primes a server with the benchmark's alert until it answers 202, so every measured request is a duplicate. */
async function prime(server: Server, url: string): Promise<void> {
  await eventually(async () => (await post(url)) === 202, {
    what: `${server} to answer 202 to the benchmark alert`,
    timeoutMs: 10_000,
  });
}

async function settle(pids: Record<string, number>, notes: string[], before: string): Promise<void> {
  try {
    await eventually(async () => Object.values(await coresOver(pids, 500)).every((cores) => cores < IDLE_CORES), {
      what: "the servers to be idle",
      timeoutMs: SETTLE_TIMEOUT_MS,
      intervalMs: 0,
    });
  } catch {
    notes.push(`servers not idle (< ${IDLE_CORES} cores) within ${SETTLE_TIMEOUT_MS / 1000} s before ${before}`);
  }
}

interface LoadRun {
  summary: SummaryData;
  loadAverage1m: number;
  windowSeconds: number;
  cpuSeconds: Record<Process, number>;
}

/** Runs duplicate.ts on the embedded runner; CPU of runner, server and Redis is read at the script's markers. */
function runLoad(
  server: Server,
  target: string,
  rate: number,
  settings: Settings,
  resultsDir: string,
  pids: { server: number; redis: number },
  extraEnv: Record<string, string> = {},
): Promise<LoadRun> {
  mkdirSync(resultsDir, { recursive: true });
  const loadAverage1m = loadavg()[0] ?? 0;
  const env = {
    TARGET: target,
    PATH: SIGNAL_PATH,
    RATE: String(rate),
    DURATION: settings.duration,
    RESULTS_DIR: resultsDir,
    ...extraEnv,
  };
  const args = ["--import", "tsx", RUNNER, "run", SCRIPT, "--tag", `testid=bench-${server}-${rate}`];
  for (const [k, v] of Object.entries(env)) args.push("-e", `${k}=${v}`);
  const child = spawn(process.execPath, args, { cwd: repoRoot, stdio: ["ignore", "ignore", "pipe"] });
  const all = () => ({ runner: child.pid as number, ...pids });
  let stderr = "";
  let start: { at: number; cpu: Record<string, number> } | undefined;
  let end: { at: number; cpu: Record<string, number> } | undefined;
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
    stderr += chunk;
    if (!start && stderr.includes(LOAD_STARTING)) start = { at: performance.now(), cpu: cpuSnapshot(all()) };
    if (start && !end && stderr.includes(LOAD_FINISHED)) end = { at: performance.now(), cpu: cpuSnapshot(all()) };
  });
  return new Promise((resolve, reject) => {
    child.once("error", reject);
    child.once("exit", (code) => {
      const failure = (why: string) =>
        new Error(`${server} at ${rate}/s: ${why}; runner stderr:\n${stderr.slice(-3000)}`);
      if (code !== 0) return reject(failure(`runner exited with code ${code}`));
      if (!start || !end) return reject(failure("the script's load markers were not seen"));
      const summary = JSON.parse(readFileSync(join(resultsDir, "summary.json"), "utf8")) as SummaryData;
      const { cpu: before } = start;
      const { cpu: after } = end;
      const used = (name: Process) => (after[name] ?? 0) - (before[name] ?? 0);
      resolve({
        summary,
        loadAverage1m,
        windowSeconds: (end.at - start.at) / 1000,
        cpuSeconds: { runner: used("runner"), server: used("server"), redis: used("redis") },
      });
    });
  });
}

function profileRun(
  path: ProfileRun["path"],
  rate: number,
  run: LoadRun,
  profile: CpuProfile,
  file: string,
): ProfileRun {
  const requests = run.summary.metrics.http_reqs?.values.count ?? 0;
  const stages = stageTimes(profile, GATEWAY_STAGES);
  const busyMs = stages.reduce((sum, s) => sum + s.ms, 0);
  const perRequest = (ms: number) => (requests > 0 ? (ms * 1000) / requests : 0);
  return {
    path,
    targetRate: rate,
    requests,
    unexpected: run.summary.metrics.http_req_failed?.values.passes ?? 0,
    file,
    busyUsPerRequest: perRequest(busyMs),
    stages: stages.map((s) => ({ ...s, usPerRequest: perRequest(s.ms) })),
  };
}

function benchRun(server: Server, rate: number, settings: Settings, run: LoadRun): BenchRun {
  const value = (metric: string, stat: string) => run.summary.metrics[metric]?.values[stat] ?? 0;
  const failed = (check: string) => run.summary.root_group.checks.find((c) => c.name === check)?.fails ?? 0;
  const requests = value("http_reqs", "count");
  const cpu = (name: Process) => ({
    cores: run.cpuSeconds[name] / run.windowSeconds,
    perThousand: requests > 0 ? (run.cpuSeconds[name] / requests) * 1000 : 0,
  });
  return {
    server,
    targetRate: rate,
    requests,
    achievedRate: requests / settings.durationSeconds,
    droppedIterations: value("dropped_iterations", "count"),
    non202: failed("answered 202 (duplicate)"),
    shed503: failed("not shed (503)"),
    unanswered: failed("answered at all"),
    loadAverage1m: run.loadAverage1m,
    latencyMs: {
      p50: value("http_req_duration", "med"),
      p95: value("http_req_duration", "p(95)"),
      p99: value("http_req_duration", "p(99)"),
      max: value("http_req_duration", "max"),
    },
    startLagP99Ms: value("iteration_start_lag", "p(99)"),
    windowSeconds: run.windowSeconds,
    cpu: { runner: cpu("runner"), server: cpu("server"), redis: cpu("redis") },
  };
}

async function main(): Promise<void> {
  const settings = parseArgs(process.argv.slice(2));
  const startedAt = new Date();
  const runId = `duplicate-path-${startedAt
    .toISOString()
    .replace(/[-:]/g, "")
    .replace(/\.\d+Z$/, "Z")}`;
  const dir = join(repoRoot, "results", "bench", runId);
  mkdirSync(dir, { recursive: true });
  const loadAverage1m = loadavg()[0] ?? 0;
  process.stdout.write(`bench ${runId}: starting the local stack and the floor server\n`);

  // The inspector listens from the start, and is attached only for the profiles, after the measured runs.
  const inspectPort = await freePort();
  const stack = await new LocalStack()
    .withNamespaces({ [BENCH_NAMESPACE]: { environment: "production" } })
    .withGatewayConfig({ rateLimit: { enabled: false } })
    .withGatewayNodeOptions([`--inspect=127.0.0.1:${inspectPort}`])
    .start();
  const notes: string[] = [];
  const runs: BenchRun[] = [];
  const profiles: ProfileRun[] = [];
  let floor: ManagedProcess | undefined;
  try {
    const { redis, gateway } = stack;
    if (!(redis instanceof StartedRedisServer) || !gateway)
      throw new Error("the stack must have one Redis server and a gateway");
    const port = await freePort();
    const floorUrl = `http://127.0.0.1:${port}`;
    floor = new ManagedProcess({
      name: "bench-floor",
      command: process.execPath,
      args: ["--import", "tsx", join(repoRoot, "load", "bench", "floor-server.ts")],
      cwd: repoRoot,
      env: { REDIS_URL: redis.getConnectionUrl(), PORT: String(port) },
      ready: () => httpReady(`${floorUrl}/healthz`),
      readyTimeoutMs: 30_000,
    });
    await floor.start();
    const servers: Record<Server, { url: string; pid: number }> = {
      floor: { url: floorUrl, pid: floor.pid as number },
      gateway: { url: gateway.getUrl(), pid: gateway.process.pid as number },
    };
    const redisPid = redis.process.pid as number;
    await prime("gateway", servers.gateway.url);
    await prime("floor", servers.floor.url);
    for (const rate of settings.rates) {
      for (const server of ["floor", "gateway"] as const) {
        await settle({ floor: servers.floor.pid, gateway: servers.gateway.pid }, notes, `${server} at ${rate}/s`);
        process.stdout.write(`  ${server} at ${rate}/s for ${settings.duration}...\n`);
        const target = servers[server];
        const run = await runLoad(server, target.url, rate, settings, join(dir, "k6", `${server}-${rate}`), {
          server: target.pid,
          redis: redisPid,
        });
        runs.push(benchRun(server, rate, settings, run));
      }
    }
    const inspector = await Inspector.connect(inspectPort);
    try {
      const paths = [
        { path: "duplicate", rate: Math.max(...settings.rates), env: {} },
        { path: "creation", rate: settings.createRate, env: { NEW_FINGERPRINTS: "true" } },
      ] as const;
      for (const { path, rate, env } of paths) {
        await settle({ gateway: servers.gateway.pid }, notes, `the ${path}-path profile`);
        process.stdout.write(`  gateway CPU profile, ${path} path at ${rate}/s for ${settings.duration}...\n`);
        const { result, profile } = await inspector.profile(() =>
          runLoad(
            "gateway",
            servers.gateway.url,
            rate,
            settings,
            join(dir, "k6", `profile-${path}-${rate}`),
            { server: servers.gateway.pid, redis: redisPid },
            env,
          ),
        );
        const file = join("profiles", `gateway-${path}-${rate}.cpuprofile`);
        mkdirSync(join(dir, "profiles"), { recursive: true });
        writeFileSync(join(dir, file), JSON.stringify(profile));
        profiles.push(profileRun(path, rate, result, profile, file));
      }
    } finally {
      inspector.close();
    }
  } finally {
    await floor?.stop();
    await stack.stop();
  }

  const result: BenchResult = {
    runId,
    startedAt: startedAt.toISOString(),
    durationSeconds: Math.round((Date.now() - startedAt.getTime()) / 1000),
    settings: { rates: settings.rates, duration: settings.duration },
    machine: { cpus: cpus().length, loadAverage1m },
    runs,
    comparisons: compare(runs),
    profiles,
    notes,
  };
  const report = markdown(result);
  writeFileSync(join(dir, "bench.json"), `${JSON.stringify(result, null, 2)}\n`);
  writeFileSync(join(dir, "bench.md"), report);
  const latest = join(repoRoot, "results", "bench", "latest");
  rmSync(latest, { force: true });
  symlinkSync(runId, latest);
  process.stdout.write(`\n${report}\nresults: ${dir}\n`);
}

try {
  await main();
} catch (err) {
  if (!(err instanceof UsageError)) throw err;
  process.stderr.write(`error: ${err.message}\n${USAGE}\n`);
  process.exitCode = 2;
}
