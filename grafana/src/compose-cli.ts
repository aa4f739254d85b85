// `task grafana:up [RUN=<run-id>]` / `task grafana:down`: Grafana OSS and Prometheus of
// grafana/compose.yaml, for users with a Docker engine. `up` checks its arguments first (a bad
// RUN exits 2 before anything starts), then that Docker can run it (exit 1 naming what is
// missing: it never passes without an engine), starts both detached, waits until they answer
// and prints where to look.
//   npx tsx grafana/src/compose-cli.ts up [--run <run-id>]
//   npx tsx grafana/src/compose-cli.ts down
import { spawnSync } from "node:child_process";
import { chmodSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { delimiter, join, relative } from "node:path";
import { parseFlags, runCli, UsageError } from "../../harness/src/cli-flags.js";
import { repoRoot } from "../../harness/src/paths.js";
import { eventually } from "../../harness/src/poll.js";
import { findRun, type RunFolder as Run } from "./runs.js";

const USAGE = "usage: compose-cli.ts up [--run <run-id>] | down";
const COMPOSE_FILE = join(repoRoot, "grafana", "compose.yaml");
/** Writable copies of runs' TSDBs, one folder per run (removed by `down`). */
const COPIES = join(repoRoot, "results", "grafana", "prometheus-data");
/** What compose.yaml mounts into Grafana, relative to grafana/: generated or written beside it, so checked. */
const PROVISIONED = ["provisioning/datasources", "provisioning/dashboards", "dashboards"];

/** What keeps `docker compose` from running here, in words; empty when nothing does. */
function dockerProblems(): string[] {
  const onPath = (process.env.PATH ?? "").split(delimiter).some((d) => d && existsSync(join(d, "docker")));
  if (!onPath)
    return ["no `docker` command on PATH: install a Docker engine (https://docs.docker.com/engine/install/)"];
  const problems: string[] = [];
  const info = spawnSync("docker", ["info", "--format", "{{.ServerVersion}}"], { encoding: "utf8" });
  if (info.status !== 0)
    problems.push(
      `the Docker engine does not answer (\`docker info\` failed: ${firstLine(info.stderr || info.error?.message)})`,
    );
  const compose = spawnSync("docker", ["compose", "version"], { encoding: "utf8" });
  if (compose.status !== 0)
    problems.push(
      "the Docker Compose plugin is missing (`docker compose version` failed; https://docs.docker.com/compose/install/)",
    );
  return problems;
}

const firstLine = (text: string | undefined) => text?.trim().split("\n")[0] || "no output";

function compose(args: string[], env: Record<string, string> = {}): void {
  const res = spawnSync("docker", ["compose", "-f", COMPOSE_FILE, ...args], {
    stdio: "inherit",
    env: { ...process.env, ...env },
  });
  if (res.status !== 0) throw new Error(`docker compose ${args.join(" ")} failed (exit ${res.status})`);
}

/** Prometheus in the container runs as `nobody` and writes to its storage: a copy it may write. */
function writableCopy(run: Run): string {
  const copy = join(COPIES, run.id);
  rmSync(copy, { recursive: true, force: true });
  mkdirSync(COPIES, { recursive: true });
  cpSync(join(run.dir, "prometheus"), copy, { recursive: true });
  const open = (path: string) => {
    for (const entry of readdirSync(path, { withFileTypes: true })) {
      const p = join(path, entry.name);
      if (entry.isDirectory()) open(p);
      else chmodSync(p, 0o666);
    }
    chmodSync(path, 0o777);
  };
  open(copy);
  return copy;
}

interface Dashboard {
  uid?: string;
  title?: string;
  templating?: { list?: Array<{ name?: string }> };
}

/** A link to each provisioned dashboard, over the run's time range when there is a run. */
function dashboardLinks(grafana: string, run: Run | undefined): string[] {
  const dir = join(repoRoot, "grafana", "dashboards");
  let range = "";
  if (run) {
    try {
      const s = JSON.parse(readFileSync(join(run.dir, "summary.json"), "utf8")) as {
        startedAt: string;
        durationSeconds: number;
      };
      const from = Date.parse(s.startedAt);
      if (Number.isFinite(from)) range = `?from=${from - 30_000}&to=${from + (s.durationSeconds + 30) * 1000}`;
    } catch {
      // Without a summary the dashboards open on their default range; the data is there all the same.
    }
  }
  return readdirSync(dir)
    .filter((f) => f.endsWith(".json"))
    .sort()
    .flatMap((f) => {
      const d = JSON.parse(readFileSync(join(dir, f), "utf8")) as Dashboard;
      if (!d.uid) return [];
      let url = `${grafana}/d/${d.uid}${range}`;
      // Load runs remote-write k6's series with testid = run id.
      if (run?.suite === "load" && d.templating?.list?.some((v) => v.name === "testid"))
        url += `${range ? "&" : "?"}var-testid=${encodeURIComponent(run.id)}`;
      return [`  ${d.title ?? d.uid}: ${url}`];
    });
}

async function answers(url: string): Promise<void> {
  await eventually(
    async () => {
      const res = await fetch(url, { signal: AbortSignal.timeout(5000) });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
    },
    { what: url, timeoutMs: 120_000, intervalMs: 1000 },
  );
}

function requireDocker(): number | undefined {
  const problems = dockerProblems();
  if (problems.length === 0) return undefined;
  process.stderr.write(
    `grafana: cannot run grafana/compose.yaml here, a Docker engine with the Compose plugin is needed:\n${problems
      .map((p) => `  - ${p}\n`)
      .join("")}Without Docker, a run's own report needs none: results/<suite>/<run-id>/report.md\n`,
  );
  return 1;
}

async function up(run: Run | undefined): Promise<number> {
  const refused = requireDocker();
  if (refused) return refused;
  // Docker would create a missing bind source as an empty root-owned folder.
  const missing = PROVISIONED.filter((p) => !existsSync(join(repoRoot, "grafana", p)));
  if (missing.length > 0) {
    process.stderr.write(
      `grafana: compose.yaml mounts what is not there: ${missing.map((p) => `grafana/${p}`).join(", ")}\n`,
    );
    return 1;
  }
  const env: Record<string, string> = {};
  if (run) {
    // The copy is replaced under a stopped container only: Prometheus holds its storage open.
    compose(["rm", "--stop", "--force", "prometheus"]);
    env.PROMETHEUS_DATA = writableCopy(run);
    process.stdout.write(
      `grafana: Prometheus opens a copy of results/${run.suite}/${run.id}/prometheus at ${relative(repoRoot, env.PROMETHEUS_DATA)}\n`,
    );
  }
  compose(["up", "--detach"], env);
  // The same defaults as compose.yaml's ports.
  const grafana = `http://127.0.0.1:${process.env.GRAFANA_PORT || "3000"}`;
  const prometheus = `http://127.0.0.1:${process.env.PROMETHEUS_PORT || "9090"}`;
  await Promise.all([answers(`${grafana}/api/health`), answers(`${prometheus}/-/ready`)]);
  process.stdout.write(
    [
      `Grafana ${grafana} (anonymous viewer; admin / $GRAFANA_ADMIN_PASSWORD, default admin)`,
      `Prometheus ${prometheus} (remote write: ${prometheus}/api/v1/write)`,
      run ? `dashboards over ${run.suite} run ${run.id}:` : "dashboards:",
      ...dashboardLinks(grafana, run),
      "stop with ./taskw grafana:down",
      "",
    ].join("\n"),
  );
  return 0;
}

async function main(): Promise<number> {
  const [command, ...rest] = process.argv.slice(2);
  if (command === "down") {
    if (rest.length > 0) throw new UsageError(`down takes no arguments (got: ${rest.join(" ")})`);
    const refused = requireDocker();
    if (refused) return refused;
    compose(["down"]);
    rmSync(COPIES, { recursive: true, force: true });
    return 0;
  }
  if (command !== "up") throw new UsageError(`unknown command '${command ?? ""}'`);
  let runName: string | undefined;
  parseFlags(rest, { "--run": [/./, "a run id", (v) => (runName = v)] });
  return up(runName === undefined ? undefined : findRun(runName));
}

await runCli(main, USAGE);
