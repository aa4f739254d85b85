// `task chaos:<suite>`: run the suite's experiments one after another on fresh local stacks,
// write results/chaos/<run-id>/ (summary.json, report.md, the review's report.html and its
// screenshot, every component's log) and exit 0 only when every experiment held.
//   npx tsx chaos/suite/run.ts <network|redis-failover|infra|resources|all|<group/name>> [--mode ci|full] [--rate N] [--duration 60s] [--kills N] [--seed N]
import { existsSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { reviewProblems, reviewRun } from "../../grafana/src/report/review.js";
import { parseFlags, runCli, UsageError } from "../../harness/src/cli-flags.js";
import { repoRoot } from "../../harness/src/paths.js";
import { durationMs } from "../../load/lib/duration.ts";
import { EXPERIMENTS, SUITES } from "../experiments/index.js";
import type { RunParameters } from "../src/experiment.js";
import { type ChaosSummary, markdownReport } from "../src/report.js";
import { type ExperimentResult, runExperiment } from "../src/runner.js";

const USAGE = `usage: run.ts <${[...Object.keys(SUITES), "<group/name>"].join("|")}> [--mode ci|full] [--rate N] [--duration 60s] [--kills N] [--seed N]
experiments: ${Object.keys(EXPERIMENTS).join(", ")}`;

function parseArgs(argv: string[]): { suite: string; names: string[]; params: RunParameters } {
  const [suite, ...rest] = argv;
  if (!suite) throw new UsageError("missing the suite or experiment to run");
  const names = SUITES[suite] ?? (EXPERIMENTS[suite] ? [suite] : undefined);
  if (!names) throw new UsageError(`unknown suite or experiment '${suite}'`);
  const params: RunParameters = { mode: "ci", seed: 1 };
  parseFlags(rest, {
    "--mode": [/^(ci|full)$/, "ci or full", (v) => (params.mode = v as RunParameters["mode"])],
    "--rate": [/^[1-9]\d{0,4}$/, "a whole number of signals per second, 1..99999", (v) => (params.rate = Number(v))],
    "--duration": [/^\d+(ms|s|m|h)$/, "a duration like 30s, 2m or 10m", (v) => (params.durationMs = durationMs(v))],
    "--kills": [/^[1-9]\d{0,2}$/, "a whole number of kills, 1..999", (v) => (params.kills = Number(v))],
    "--seed": [/^\d{1,9}$/, "a non-negative whole number", (v) => (params.seed = Number(v))],
  });
  if (params.durationMs !== undefined && params.durationMs < 1000)
    throw new UsageError(`--duration: must be at least 1s (got: ${params.durationMs} ms)`);
  return { suite, names, params };
}

async function main(): Promise<number> {
  const { suite, names, params } = parseArgs(process.argv.slice(2));
  // Every experiment is built (and its parameters checked) before any stack starts.
  let experiments: ReturnType<NonNullable<(typeof EXPERIMENTS)[string]>>[];
  try {
    experiments = names.map((n) => (EXPERIMENTS[n] as NonNullable<(typeof EXPERIMENTS)[string]>)(params));
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const startedAt = new Date();
  const runId = `${suite.replace(/\//g, "-")}-${startedAt
    .toISOString()
    .replace(/[-:]/g, "")
    .replace(/\.\d+Z$/, "Z")}`;
  const dir = join(repoRoot, "results", "chaos", runId);
  mkdirSync(dir, { recursive: true });
  // Component logs land in the run folder, next to the report.
  process.env.HARNESS_RUN_DIR = join(dir, "logs");
  process.stdout.write(`chaos run ${runId}: ${names.join(", ")}; results in ${dir}\n`);
  const progress = (line: string) => process.stdout.write(`${new Date().toISOString().slice(11, 19)} ${line}\n`);
  const results: ExperimentResult[] = [];
  let review: ChaosSummary["review"];
  const write = () => {
    const summary: ChaosSummary = {
      runId,
      suite,
      parameters: { ...params },
      startedAt: startedAt.toISOString(),
      durationSeconds: Math.round((Date.now() - startedAt.getTime()) / 1000),
      pass: results.length === experiments.length && results.every((r) => r.verdict === "Pass"),
      experiments: results,
      review,
    };
    writeFileSync(join(dir, "summary.json"), `${JSON.stringify(summary, null, 2)}\n`);
    writeFileSync(join(dir, "report.md"), markdownReport(summary));
    const latest = join(repoRoot, "results", "chaos", "latest");
    rmSync(latest, { force: true });
    symlinkSync(runId, latest);
    return summary;
  };
  for (const experiment of experiments) {
    // One TSDB for the run: each experiment's fresh Prometheus reopens it and appends, so
    // `task grafana:up RUN=<run-id>` shows the whole run on one time axis.
    const result = await runExperiment(experiment, { progress, prometheusDataDir: join(dir, "prometheus") });
    results.push(result);
    progress(`${result.name}: ${result.verdict}${result.reason ? ` (${result.reason})` : ""}`);
    write();
  }
  // Every experiment's Prometheus appended to the one TSDB: the review sees the whole run.
  if (existsSync(join(dir, "prometheus"))) {
    progress("review: the Chaos dashboard over the run, report.html checked in Chromium");
    review = await reviewRun({ suite: "chaos", id: runId, dir });
    for (const problem of reviewProblems(review)) progress(`REVIEW: ${problem}`);
  }
  const summary = write();
  process.stdout.write(`${summary.pass ? "PASS" : "FAIL"}: report ${join(dir, "report.md")}\n`);
  return summary.pass ? 0 : 1;
}

await runCli(main, USAGE);
