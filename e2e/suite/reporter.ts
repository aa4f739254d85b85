// The results of an e2e run: summary.json and report.md in the run folder, one entry per
// scenario test with its given/when/then steps (what each expectation last saw). The report
// logic is pure (e2eSummary, markdownReport); the reporter only gathers Vitest's results.
import { writeFileSync } from "node:fs";
import { basename, join, relative } from "node:path";
import type { Reporter, SerializedError, TestModule, TestRunEndReason } from "vitest/node";
import type { E2eMeta, E2eStep } from "../src/dsl.js";

export type { E2eMeta, E2eStep };

/** One finished test as Vitest reports it. */
export interface E2eTestResult {
  file: string;
  test: string;
  state: "passed" | "failed" | "skipped";
  durationMs: number;
  meta?: E2eMeta;
  error?: string;
}

export interface E2eScenario {
  scenario: number;
  title: string;
  file: string;
  test: string;
  state: E2eTestResult["state"];
  durationMs: number;
  steps: E2eStep[];
  error?: string;
}

export interface E2eSummary {
  runId: string;
  mode: string;
  startedAt: string;
  durationMs: number;
  /** Every selected scenario passed, at least one ran, and nothing failed outside a test. */
  pass: boolean;
  passed: number;
  failed: number;
  skipped: number;
  scenarios: E2eScenario[];
  /** Failures outside any test: a file that did not load, a failed hook, an unhandled error. */
  errors: string[];
}

export interface E2eRun {
  runId: string;
  mode: string;
  startedAt: string;
}

/** A scenario file is `NN-<slug>.test.ts`: its number when the test left no meta. */
const fileNumber = (file: string) => Number(/^(\d+)-/.exec(basename(file))?.[1] ?? 0);

export function e2eSummary(run: E2eRun, tests: E2eTestResult[], errors: string[], durationMs: number): E2eSummary {
  const scenarios = tests
    .map(
      (t): E2eScenario => ({
        scenario: t.meta?.scenario ?? fileNumber(t.file),
        title: t.meta?.title ?? t.test,
        file: t.file,
        test: t.test,
        state: t.state,
        durationMs: t.durationMs,
        steps: t.meta?.steps ?? [],
        ...(t.error !== undefined && { error: t.error }),
      }),
    )
    // Stable: tests of one scenario keep their order in the file.
    .sort((a, b) => a.scenario - b.scenario);
  const count = (state: E2eTestResult["state"]) => scenarios.filter((s) => s.state === state).length;
  const [passed, failed, skipped] = [count("passed"), count("failed"), count("skipped")];
  return {
    ...run,
    durationMs,
    pass: passed > 0 && failed === 0 && errors.length === 0,
    passed,
    failed,
    skipped,
    scenarios,
    errors,
  };
}

const cell = (v: unknown) =>
  String(v ?? "")
    .replace(/\|/g, "\\|")
    .replace(/\n/g, " ");
const oneLine = (v: string) => v.replace(/\s*\n\s*/g, " ");
const RESULT = { passed: "pass", failed: "**FAIL**", skipped: "skipped" } as const;

export function markdownReport(s: E2eSummary): string {
  const lines = [
    `# E2E run ${s.runId}: ${s.pass ? "PASS" : "FAIL"}`,
    "",
    `Mode **${s.mode}**, started ${s.startedAt}, ${(s.durationMs / 1000).toFixed(1)} s: ${s.passed} passed, ${s.failed} failed, ${s.skipped} skipped.`,
    "",
  ];
  if (!s.scenarios.length) lines.push("No scenario ran.", "");
  else
    lines.push(
      "| # | scenario | result | duration |",
      "|---|---|---|---|",
      ...s.scenarios.map(
        (c) => `| ${c.scenario} | ${cell(c.title)} | ${RESULT[c.state]} | ${(c.durationMs / 1000).toFixed(1)} s |`,
      ),
      "",
    );
  if (s.errors.length) lines.push("## Errors outside the scenarios", "", ...s.errors.map((e) => `- ${oneLine(e)}`), "");
  for (const c of s.scenarios) {
    lines.push(`## ${c.scenario}. ${c.title}: ${RESULT[c.state]}`, "", `\`${c.file}\` › ${c.test}`, "");
    if (c.steps.length)
      lines.push(
        ...c.steps.map(
          (st) =>
            `- ${st.ok ? "✓" : "✗"} **${st.kind}** ${oneLine(st.text)} (${st.ms} ms)${st.detail ? `: ${oneLine(st.detail)}` : ""}`,
        ),
        "",
      );
    if (c.error) lines.push("**Error:**", "", "```", c.error, "```", "");
  }
  return `${lines.join("\n")}\n`;
}

/** An error's message without its stack: the report says what failed, the terminal showed where. */
const message = (e: SerializedError | undefined) => e?.message;

/** Writes summary.json and report.md into `outDir` when the run ends; `summary` is the last one written. */
export class E2eReporter implements Reporter {
  summary: E2eSummary | undefined;

  constructor(
    private readonly outDir: string,
    private readonly run: E2eRun,
    private readonly root: string,
  ) {}

  onTestRunEnd(
    testModules: ReadonlyArray<TestModule>,
    unhandledErrors: ReadonlyArray<SerializedError>,
    reason: TestRunEndReason,
  ): void {
    const tests: E2eTestResult[] = [];
    const errors: string[] = [];
    for (const m of testModules) {
      const file = relative(this.root, m.moduleId);
      for (const e of m.errors()) errors.push(`${file}: ${message(e)}`);
      for (const t of m.children.allTests()) {
        const result = t.result();
        const error = result.state === "failed" ? message(result.errors?.[0]) : undefined;
        tests.push({
          file,
          test: t.fullName,
          // A test still pending when the run ended never ran.
          state: result.state === "pending" ? "skipped" : result.state,
          durationMs: Math.round(t.diagnostic()?.duration ?? 0),
          meta: (t.meta() as { e2e?: E2eMeta }).e2e,
          ...(error !== undefined && { error }),
        });
      }
    }
    errors.push(...unhandledErrors.map((e) => `unhandled: ${message(e)}`));
    if (reason === "interrupted") errors.push("the run was interrupted before every scenario finished");
    this.summary = e2eSummary(this.run, tests, errors, Date.now() - Date.parse(this.run.startedAt));
    writeFileSync(join(this.outDir, "summary.json"), `${JSON.stringify(this.summary, null, 2)}\n`);
    writeFileSync(join(this.outDir, "report.md"), markdownReport(this.summary));
  }
}
