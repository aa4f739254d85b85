// `task e2e:<mode>`: run the end-to-end scenarios (e2e/scenarios/NN-<slug>.test.ts) with Vitest,
// write results/e2e/<run-id>/ (summary.json, report.md, junit.xml, component logs) and exit 0
// only when every selected scenario passed.
//   npx tsx e2e/suite/run.ts <lifecycle|kind|cluster> [--scenario N[,N...]] [--kubeconfig FILE] [--gateway-url URL]
//     [--data-storage-url URL] [--redis-url URL]
// E2E_SCENARIO_DIR names another folder of scenario files, E2E_RESULTS_DIR another results root
// (both for the runner's own tests).
import { existsSync, mkdirSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { startVitest } from "vitest/node";
import { type FlagSpec, parseFlags, runCli, UsageError } from "../../harness/src/cli-flags.js";
import { repoRoot } from "../../harness/src/paths.js";
import { createKindCluster, deleteKindCluster, kindUnavailable } from "./kind.js";
import { E2eReporter, type E2eRun, e2eSummary, markdownReport } from "./reporter.js";

const MODES = ["lifecycle", "kind", "cluster"] as const;
type Mode = (typeof MODES)[number];

const USAGE = `usage: run.ts lifecycle [--scenario N[,N...]]
       run.ts cluster --kubeconfig FILE --gateway-url URL [--data-storage-url URL] [--redis-url URL] [--scenario N[,N...]]
       run.ts kind [--scenario N[,N...]]`;

/**
 * The scenarios that run on an existing cluster: they need only its API server, its gateway,
 * and (for their audit and Redis checks) Data Storage and Redis reachable from here. The
 * others configure, restart or patch the gateway, or fault processes of the local stack.
 */
const ON_A_CLUSTER = [1, 2, 3];

/** Scenario files; the runner's own fixtures are `*.scenario.ts`, so the repo's test run leaves them alone. */
const SCENARIO_FILE = /\.(test|scenario)\.ts$/;

interface Options {
  mode: Mode;
  scenarioDir: string;
  /** The scenario files to run, names in `scenarioDir`. */
  files: string[];
  kubeconfig?: string;
  gatewayUrl?: string;
  dataStorageUrl?: string;
  redisUrl?: string;
}

function parseArgs(argv: string[], scenarioDir: string): Options {
  const [mode, ...rest] = argv;
  if (!mode) throw new UsageError("missing the mode: lifecycle, kind or cluster");
  if (!(MODES as readonly string[]).includes(mode)) throw new UsageError(`unknown mode '${mode}'`);
  const o: Options = { mode: mode as Mode, scenarioDir, files: [] };
  let numbers: number[] | undefined;
  const flags: Record<string, FlagSpec> = {
    "--scenario": [
      /^\d{1,2}(,\d{1,2})*$/,
      "scenario numbers like 1 or 1,3",
      (v) => (numbers = v.split(",").map(Number)),
    ],
  };
  if (mode === "cluster") {
    flags["--kubeconfig"] = [
      /./,
      "a kubeconfig file",
      (v) => {
        if (!statSync(v, { throwIfNoEntry: false })?.isFile())
          throw new UsageError(`--kubeconfig: must be an existing kubeconfig file (got: ${v})`);
        o.kubeconfig = resolve(v);
      },
    ];
    flags["--gateway-url"] = [
      /^https?:\/\/[^\s/]+(\/.*)?$/,
      "an http or https URL like http://gateway.example:8080",
      (v) => (o.gatewayUrl = v),
    ];
    flags["--data-storage-url"] = [
      /^https?:\/\/[^\s/]+(\/.*)?$/,
      "an http or https URL like http://127.0.0.1:30081",
      (v) => (o.dataStorageUrl = v),
    ];
    flags["--redis-url"] = [/^rediss?:\/\/\S+$/, "a Redis URL like redis://127.0.0.1:6379", (v) => (o.redisUrl = v)];
  }
  parseFlags(rest, flags);
  if (mode === "cluster" && !o.kubeconfig)
    throw new UsageError("--kubeconfig: required for cluster (the kubeconfig of the cluster the gateway runs in)");
  if (mode === "cluster" && !o.gatewayUrl)
    throw new UsageError("--gateway-url: required for cluster (where the scenarios reach that gateway)");
  o.files = (existsSync(scenarioDir) ? readdirSync(scenarioDir) : []).filter((f) => SCENARIO_FILE.test(f)).sort();
  if (mode !== "lifecycle") {
    const local = numbers?.filter((n) => !ON_A_CLUSTER.includes(n)) ?? [];
    if (local.length > 0)
      throw new UsageError(
        `--scenario: ${local.join(",")} need the local stack (e2e:lifecycle); on a cluster: ${ON_A_CLUSTER.join(",")}`,
      );
    // By default the scenario files there are of those that run on a cluster.
    if (!numbers) o.files = o.files.filter((f) => ON_A_CLUSTER.includes(Number(/^(\d+)-/.exec(f)?.[1])));
  }
  if (numbers) {
    const where = relative(repoRoot, scenarioDir) || scenarioDir;
    const prefixes = numbers.map((n) => `${String(n).padStart(2, "0")}-`);
    for (const [i, prefix] of prefixes.entries())
      if (!o.files.some((f) => f.startsWith(prefix)))
        throw new UsageError(`--scenario: no scenario file ${prefix}<slug>.test.ts in ${where} (got: ${numbers[i]})`);
    o.files = o.files.filter((f) => prefixes.some((p) => f.startsWith(p)));
  }
  return o;
}

async function main(): Promise<number> {
  const scenarioDir = resolve(process.env.E2E_SCENARIO_DIR ?? join(repoRoot, "e2e", "scenarios"));
  const opts = parseArgs(process.argv.slice(2), scenarioDir);
  const startedAt = new Date();
  const run: E2eRun = {
    runId: `${opts.mode}-${startedAt
      .toISOString()
      .replace(/[-:]/g, "")
      .replace(/\.\d+Z$/, "Z")}`,
    mode: opts.mode,
    startedAt: startedAt.toISOString(),
  };
  const resultsRoot = resolve(process.env.E2E_RESULTS_DIR ?? join(repoRoot, "results", "e2e"));
  const dir = join(resultsRoot, run.runId);
  mkdirSync(dir, { recursive: true });
  const report = join(dir, "report.md");
  const finish = (pass: boolean) => {
    const latest = join(resultsRoot, "latest");
    rmSync(latest, { force: true });
    symlinkSync(run.runId, latest);
    process.stdout.write(`${pass ? "PASS" : "FAIL"}: report ${report}\n`);
  };

  if (opts.mode === "kind") {
    const reason = kindUnavailable();
    if (reason === undefined) return runOnKind(opts, run, dir, finish);
    writeFileSync(join(dir, "summary.json"), `${JSON.stringify({ ...run, runnable: false, reason }, null, 2)}\n`);
    writeFileSync(report, `# E2E run ${run.runId}: NOT RUNNABLE\n\n${reason}\n`);
    process.stderr.write(`${reason}\n`);
    finish(false);
    return 3;
  }

  return runScenarios(opts, run, dir, finish);
}

/** e2e:kind: a Kind cluster brought up, the cluster scenarios run on it, the cluster deleted (its logs kept on failure). */
async function runOnKind(opts: Options, run: E2eRun, dir: string, finish: (pass: boolean) => void): Promise<number> {
  // Ctrl-C must not leave a cluster behind.
  const interrupted = () => {
    deleteKindCluster(undefined);
    process.exit(130);
  };
  process.once("SIGINT", interrupted);
  let code = 1;
  try {
    const target = await createKindCluster(dir);
    code = await runScenarios({ ...opts, mode: "cluster", ...target }, run, dir, finish);
  } catch (err) {
    const reason = `the Kind cluster did not come up: ${(err as Error).message}`;
    writeFileSync(
      join(dir, "summary.json"),
      `${JSON.stringify({ ...run, runnable: true, pass: false, reason }, null, 2)}\n`,
    );
    writeFileSync(join(dir, "report.md"), `# E2E run ${run.runId}: FAILED\n\n${reason}\n`);
    process.stderr.write(`${reason}\n`);
    finish(false);
  } finally {
    process.off("SIGINT", interrupted);
    deleteKindCluster(code === 0 ? undefined : join(dir, "kind-logs"));
  }
  return code;
}

async function runScenarios(opts: Options, run: E2eRun, dir: string, finish: (pass: boolean) => void): Promise<number> {
  const startedAt = new Date(run.startedAt);
  const report = join(dir, "report.md");
  // Each mode says what the scenarios run against; nothing is inherited from the shell.
  for (const key of ["E2E_TARGET", "E2E_KUBECONFIG", "E2E_GATEWAY_URL", "E2E_DATA_STORAGE_URL", "E2E_REDIS_URL"])
    delete process.env[key];
  if (opts.mode === "cluster") {
    process.env.E2E_TARGET = "cluster";
    process.env.E2E_KUBECONFIG = opts.kubeconfig;
    process.env.E2E_GATEWAY_URL = opts.gatewayUrl;
    if (opts.dataStorageUrl) process.env.E2E_DATA_STORAGE_URL = opts.dataStorageUrl;
    if (opts.redisUrl) process.env.E2E_REDIS_URL = opts.redisUrl;
  }
  // Component logs land in the run folder, next to the report.
  process.env.HARNESS_RUN_DIR = join(dir, "logs");
  process.stdout.write(`e2e run ${run.runId}: ${opts.files.join(", ") || "no scenario files"}; results in ${dir}\n`);
  const reporter = new E2eReporter(dir, run, repoRoot);
  // No config file: the repo's config would add its JSON reporter (results/test/vitest.json, which
  // CI counts) and its projects' includes, which leave the fixtures' `*.scenario.ts` out.
  await startVitest("test", [], {
    config: false,
    root: repoRoot,
    dir: opts.scenarioDir,
    include: opts.files,
    watch: false,
    reporters: ["default", "junit", reporter],
    outputFile: { junit: join(dir, "junit.xml") },
    // Every scenario starts its own stack: one file at a time on two cores.
    maxWorkers: 1,
    testTimeout: 180_000,
    hookTimeout: 180_000,
  });
  // Vitest ends without a test run when it cannot start (its error is on the terminal above).
  const summary =
    reporter.summary ??
    e2eSummary(run, [], ["Vitest did not run the scenarios (its error is above)"], Date.now() - startedAt.getTime());
  if (!reporter.summary) {
    writeFileSync(join(dir, "summary.json"), `${JSON.stringify(summary, null, 2)}\n`);
    writeFileSync(report, markdownReport(summary));
  }
  finish(summary.pass);
  return summary.pass ? 0 : 1;
}

await runCli(main, USAGE);
