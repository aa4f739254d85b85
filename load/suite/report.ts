// The human report of a load run: Markdown with the figures, thresholds and invariants, and a
// link to the run's review (its dashboards drawn in report.html, with a screenshot).
import { type Review, reviewProblems } from "../../grafana/src/report/review.js";
import type { Check } from "../../harness/src/invariants.js";

export interface ThresholdResult {
  metric: string;
  expression: string;
  observed: number | null;
  ok: boolean;
}

export interface LoadSummary {
  scenario: string;
  runId: string;
  runner: string;
  target: string;
  startedAt: string;
  durationSeconds: number;
  exitCode: number;
  pass: boolean;
  figures: Record<string, number | null>;
  thresholds: ThresholdResult[];
  invariants: Check[];
  notes: string[];
  /** The dashboards over the run (grafana/src/report): report.html, report.png, every panel named. */
  review?: Review;
}

function fmt(v: number | string | null | undefined): string {
  if (v === null || v === undefined) return "n/a";
  if (typeof v === "number") return Number.isInteger(v) ? String(v) : v.toFixed(2);
  return v;
}

export function markdownReport(s: LoadSummary): string {
  const lines = [
    `# Load run ${s.runId}: ${s.pass ? "PASS" : "FAIL"}`,
    "",
    `Scenario **${s.scenario}**, runner ${s.runner}, target ${s.target}, started ${s.startedAt}, ${s.durationSeconds} s, exit code ${s.exitCode}.`,
    "",
    "## Figures",
    "",
    "| figure | value |",
    "|---|---|",
    ...Object.entries(s.figures).map(([k, v]) => `| ${k} | ${fmt(v)} |`),
    "",
    "## Thresholds",
    "",
    "| metric | threshold | observed | result |",
    "|---|---|---|---|",
    ...s.thresholds.map(
      (t) => `| \`${t.metric}\` | \`${t.expression}\` | ${fmt(t.observed)} | ${t.ok ? "ok" : "**FAILED**"} |`,
    ),
    "",
    "## Invariants (checked against the real state)",
    "",
    "| invariant | expected | observed | result |",
    "|---|---|---|---|",
    ...s.invariants.map(
      (c) => `| ${c.name} | ${fmt(c.expected)} | ${fmt(c.observed)} | ${c.ok ? "ok" : "**FAILED**"} |`,
    ),
  ];
  if (s.review) lines.push("", ...reviewSection(s.review));
  if (s.notes.length) lines.push("", "## Notes", "", ...s.notes.map((n) => `- ${n}`));
  return `${lines.join("\n")}\n`;
}

/** The review's verdict, what it named, and its screenshot: shared by the load and chaos reports. */
export function reviewSection(review: Review): string[] {
  const problems = reviewProblems(review);
  return [
    `## Dashboards over the run: ${review.pass ? "every panel drawn with data" : "**FAILED**"}`,
    "",
    `[report.html](${review.files.html}) draws the run's dashboards from its own Prometheus TSDB (${review.panels.length} panels, checked in Chromium; the data in [${review.files.panels}](${review.files.panels})).`,
    ...(problems.length ? ["", ...problems.map((p) => `- ${p}`)] : []),
    ...(review.files.screenshot ? ["", `![the review report](${review.files.screenshot})`] : []),
  ];
}
