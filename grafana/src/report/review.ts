// The review of a finished load or chaos run, from the Prometheus TSDB it kept in its folder:
// every panel of its dashboards queried over the run's window (panels.json), one HTML page
// (report.html), that page opened in Chromium (report.png) and what it showed (review.json).
// Load and chaos runs call it when they end; `task grafana:report RUN=<run-id>` on any run.
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PrometheusServer } from "../../../harness/src/components/prometheus.js";
import { repoRoot } from "../../../harness/src/paths.js";
import type { LintDashboard } from "../lint.js";
import type { RunFolder, Suite } from "../runs.js";
import { type BrowserView, viewInBrowser } from "./browser.js";
import { renderReport, type Table } from "./html.js";
import { panelsWithoutData, queryDashboard, type ReviewDashboard, type Window } from "./query.js";

export interface Review {
  runId: string;
  expected: string;
  /** Panels that returned no value or whose query was refused, named. */
  withoutData: string[];
  /** Panels the browser did not draw, named with the state they ended in. */
  notDrawn: string[];
  consoleErrors: string[];
  panels: Array<{ dashboard: string; title: string; series: number; state: string }>;
  files: { html: string; screenshot: string | null; panels: string };
  pass: boolean;
}

/** What the review reads of either suite's summary.json (load/suite/report.ts, chaos/src/report.ts). */
interface Check {
  name: string;
  expected: unknown;
  observed: unknown;
  ok: boolean;
}
interface RunSummary {
  runId: string;
  startedAt: string;
  durationSeconds: number;
  pass: boolean;
  scenario?: string;
  suite?: string;
  figures?: Record<string, unknown>;
  thresholds?: Array<{ metric: string; expression: string; observed: unknown; ok: boolean }>;
  invariants?: Check[];
  experiments?: Array<{ name: string; verdict: string; reason?: string; invariants: Check[] }>;
}

/** Each suite's dashboards, and the variables that select the run. */
const DASHBOARDS: Record<Suite, { file: string; variables: (runId: string) => Record<string, string> }[]> = {
  // Load runs remote-write k6's series with testid = run id.
  load: [
    { file: "load-test.json", variables: (runId) => ({ testid: runId }) },
    { file: "gateway.json", variables: () => ({}) },
  ],
  chaos: [{ file: "chaos.json", variables: () => ({}) }],
};

export function suiteDashboards(suite: Suite): LintDashboard[] {
  return DASHBOARDS[suite].map(
    (d) => JSON.parse(readFileSync(join(repoRoot, "grafana", "dashboards", d.file), "utf8")) as LintDashboard,
  );
}

const text = (v: unknown) =>
  v === null || v === undefined ? "n/a" : typeof v === "number" && !Number.isInteger(v) ? v.toFixed(2) : String(v);

function tables(s: RunSummary): Table[] {
  const out: Table[] = [];
  if (s.thresholds?.length)
    out.push({
      title: "Thresholds",
      headers: ["metric", "threshold", "observed", "result"],
      rows: s.thresholds.map((t) => [t.metric, t.expression, text(t.observed), t.ok ? "ok" : "FAILED"]),
      ok: s.thresholds.map((t) => t.ok),
    });
  const checks = [
    ...(s.invariants ?? []).map((c) => ["", c] as const),
    ...(s.experiments ?? []).flatMap((e) => e.invariants.map((c) => [e.name, c] as const)),
  ];
  if (s.experiments?.length)
    out.push({
      title: "Experiments",
      headers: ["experiment", "verdict", "reason"],
      rows: s.experiments.map((e) => [e.name, e.verdict, e.reason ?? ""]),
      ok: s.experiments.map((e) => e.verdict === "Pass"),
    });
  if (checks.length)
    out.push({
      title: "Invariants (checked against the real state)",
      headers: [...(s.experiments ? ["experiment"] : []), "invariant", "expected", "observed", "result"],
      rows: checks.map(([e, c]) => [
        ...(s.experiments ? [e] : []),
        c.name,
        text(c.expected),
        text(c.observed),
        c.ok ? "ok" : "FAILED",
      ]),
      ok: checks.map(([, c]) => c.ok),
    });
  if (s.figures && Object.keys(s.figures).length)
    out.push({
      title: "Figures",
      headers: ["figure", "value"],
      rows: Object.entries(s.figures).map(([k, v]) => [k, text(v)]),
    });
  return out;
}

/** The run's TSDB, copied (Prometheus writes to what it opens), served while `use` runs. */
async function withRunPrometheus<T>(
  run: RunFolder,
  use: (p: Awaited<ReturnType<PrometheusServer["start"]>>) => Promise<T>,
): Promise<T> {
  const copy = mkdtempSync(join(tmpdir(), "gw-review-tsdb-"));
  try {
    cpSync(join(run.dir, "prometheus"), copy, { recursive: true });
    const prometheus = await new PrometheusServer().withDataDir(copy).start();
    try {
      return await use(prometheus);
    } finally {
      await prometheus.stop();
    }
  } finally {
    rmSync(copy, { recursive: true, force: true });
  }
}

/**
 * Queries, renders and views the run's dashboards (or `dashboards`, e.g. a copy broken on purpose
 * by a test), writes the files beside the run, and says whether every panel was drawn with data.
 */
export async function reviewRun(run: RunFolder, dashboards = suiteDashboards(run.suite)): Promise<Review> {
  const summary = JSON.parse(readFileSync(join(run.dir, "summary.json"), "utf8")) as RunSummary;
  const start = new Date(summary.startedAt);
  const window: Window = { start, end: new Date(start.getTime() + Math.max(1, summary.durationSeconds) * 1000) };
  const variables = DASHBOARDS[run.suite].map((d) => d.variables(run.id));
  const reviewed: ReviewDashboard[] = await withRunPrometheus(run, (prometheus) =>
    Promise.all(dashboards.map((d, i) => queryDashboard(prometheus, d, window, variables[i] ?? {}))),
  );
  const files = { html: "report.html", screenshot: "report.png", panels: "panels.json" };
  writeFileSync(join(run.dir, files.panels), `${JSON.stringify(reviewed, null, 2)}\n`);
  writeFileSync(
    join(run.dir, files.html),
    renderReport({
      title: `${run.suite === "load" ? "Load" : "Chaos"} run ${run.id}`,
      verdict: summary.pass ? "PASS" : "FAIL",
      subtitle: `${summary.scenario ?? summary.suite ?? run.suite}, started ${summary.startedAt}, ${summary.durationSeconds} s; every panel queried from the run's own Prometheus TSDB (results/${run.suite}/${run.id}/prometheus).`,
      window: { start: window.start.getTime() / 1000, end: window.end.getTime() / 1000 },
      tables: tables(summary),
      dashboards: reviewed,
    }),
  );
  let view: BrowserView;
  try {
    view = await viewInBrowser(join(run.dir, files.html), join(run.dir, files.screenshot));
  } catch (err) {
    view = { panels: [], consoleErrors: [`the report could not be viewed in Chromium: ${(err as Error).message}`] };
  }
  const screenshot = view.panels.length > 0 ? files.screenshot : null;
  const withoutData = panelsWithoutData(reviewed);
  // Empty and refused panels are named in withoutData already.
  const notDrawn = view.panels
    .filter((p) => !["drawn", "empty", "error"].includes(p.state))
    .map((p) => `${p.dashboard}: panel "${p.title}": ${p.state}`);
  const review: Review = {
    runId: run.id,
    expected: "every panel of the run's dashboards returns data and is drawn in Chromium, no console error",
    withoutData,
    notDrawn,
    consoleErrors: view.consoleErrors,
    panels: view.panels,
    files: { ...files, screenshot },
    pass:
      withoutData.length === 0 && notDrawn.length === 0 && view.consoleErrors.length === 0 && view.panels.length > 0,
  };
  writeFileSync(join(run.dir, "review.json"), `${JSON.stringify(review, null, 2)}\n`);
  return review;
}

/** The review's problems, one line each, for a suite's output. */
export function reviewProblems(review: Review): string[] {
  return [...review.withoutData, ...review.notDrawn, ...review.consoleErrors.map((e) => `console: ${e}`)];
}
