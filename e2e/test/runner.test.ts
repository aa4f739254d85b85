// The e2e entry point: the report of a run (pure), its refusal of bad flags before anything
// starts, `kind` saying what it lacks, and a lifecycle run end to end on the fixture scenarios
// (e2e/test/fixtures/*.scenario.ts, which only run.ts includes).
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { repoRoot } from "../../harness/src/paths.js";
import { type E2eSummary, e2eSummary, markdownReport } from "../suite/reporter.js";

let results = "";
let kubeconfig = "";
beforeAll(() => {
  results = mkdtempSync(join(tmpdir(), "e2e-runner-"));
  kubeconfig = join(results, "kubeconfig");
  writeFileSync(kubeconfig, "apiVersion: v1\nkind: Config\n");
});
afterAll(() => rmSync(results, { recursive: true, force: true }));

let runs = 0;
/** run.ts with its own results root per call, so two runs in one second never share a folder. */
function run(...args: string[]) {
  const root = join(results, String(++runs));
  const argv = args.map((a) => (a === "KUBECONFIG" ? kubeconfig : a));
  const r = spawnSync(process.execPath, ["--import", "tsx", join(repoRoot, "e2e", "suite", "run.ts"), ...argv], {
    cwd: repoRoot,
    encoding: "utf8",
    timeout: 60_000,
    env: { ...process.env, E2E_SCENARIO_DIR: join(repoRoot, "e2e", "test", "fixtures"), E2E_RESULTS_DIR: root },
  });
  const file = (name: string) => readFileSync(join(root, "latest", name), "utf8");
  return { code: r.status, stderr: r.stderr, stdout: r.stdout, root, file };
}

describe("e2eSummary and markdownReport", () => {
  const summary = e2eSummary(
    { runId: "lifecycle-20260101T000000Z", mode: "lifecycle", startedAt: "2026-01-01T00:00:00.000Z" },
    [
      {
        file: "e2e/scenarios/02-duplicate.test.ts",
        test: "a duplicate is counted",
        state: "failed",
        durationMs: 4200,
        error: "occurrences: expected 1 to be 2",
        meta: {
          scenario: 2,
          title: "A duplicate alert is counted on the request",
          steps: [
            { kind: "when", text: "the alert fires twice", ok: true, ms: 30 },
            { kind: "then", text: "occurrenceCount reaches 2", ok: false, ms: 4000, detail: "occurrenceCount 1" },
          ],
        },
      },
      {
        file: "e2e/scenarios/01-remediated.test.ts",
        test: "an alert is remediated",
        state: "passed",
        durationMs: 9000,
        meta: {
          scenario: 1,
          title: "An alert is remediated",
          steps: [{ kind: "given", text: "the local stack", ok: true, ms: 5000 }],
        },
      },
      { file: "e2e/scenarios/03-storm.test.ts", test: "a storm is aggregated", state: "skipped", durationMs: 0 },
    ],
    [],
    15_000,
  );

  it("sorts the scenarios by number, counts them and fails the run on one failure", () => {
    expect(summary).toMatchObject({ pass: false, passed: 1, failed: 1, skipped: 1, durationMs: 15_000 });
    expect(summary.scenarios.map((s) => [s.scenario, s.state])).toEqual([
      [1, "passed"],
      [2, "failed"],
      [3, "skipped"],
    ]);
    // Without meta: the file's number, the test's name, no steps.
    expect(summary.scenarios[2]).toMatchObject({ title: "a storm is aggregated", steps: [] });
    expect(summary.scenarios[1]?.error).toBe("occurrences: expected 1 to be 2");
  });

  it("names the failure, its failed step and what that step last saw", () => {
    const md = markdownReport(summary);
    expect(md).toMatch(/^# E2E run lifecycle-20260101T000000Z: FAIL\n/);
    expect(md).toContain("| 2 | A duplicate alert is counted on the request | **FAIL** | 4.2 s |");
    expect(md).toContain("| 1 | An alert is remediated | pass | 9.0 s |");
    expect(md).toContain("- ✗ **then** occurrenceCount reaches 2 (4000 ms): occurrenceCount 1");
    expect(md).toContain("- ✓ **given** the local stack (5000 ms)");
    expect(md).toContain("occurrences: expected 1 to be 2");
  });

  it("passes only when a scenario ran and nothing failed, in or outside a test", () => {
    const run = { runId: "r", mode: "lifecycle", startedAt: "2026-01-01T00:00:00.000Z" };
    const passed = { file: "01-a.test.ts", test: "a", state: "passed", durationMs: 1 } as const;
    const pass = (s: E2eSummary) => [s.pass, markdownReport(s).split("\n")[0]];
    expect(pass(e2eSummary(run, [passed], [], 1))).toEqual([true, "# E2E run r: PASS"]);
    expect(pass(e2eSummary(run, [], [], 1))).toEqual([false, "# E2E run r: FAIL"]);
    expect(pass(e2eSummary(run, [passed], ["02-b.test.ts: boom at import"], 1))).toEqual([false, "# E2E run r: FAIL"]);
  });
});

describe("e2e/suite/run.ts", () => {
  // KUBECONFIG stands for an existing kubeconfig file.
  it.each([
    ["unknown flag '--speed'", ["lifecycle", "--speed", "1"]],
    ["--scenario: must be scenario numbers like 1 or 1,3 (got: x)", ["lifecycle", "--scenario", "x"]],
    ["--scenario: no scenario file 07-<slug>.test.ts in e2e/test/fixtures (got: 7)", ["lifecycle", "--scenario", "7"]],
    ["--kubeconfig: required for cluster", ["cluster", "--gateway-url", "http://127.0.0.1:8080"]],
    [
      "--kubeconfig: must be an existing kubeconfig file (got: /nonexistent)",
      ["cluster", "--kubeconfig", "/nonexistent", "--gateway-url", "http://127.0.0.1:8080"],
    ],
    ["--gateway-url: required for cluster", ["cluster", "--kubeconfig", "KUBECONFIG"]],
    [
      "--gateway-url: must be an http or https URL like http://gateway.example:8080 (got: ftp://x)",
      ["cluster", "--kubeconfig", "KUBECONFIG", "--gateway-url", "ftp://x"],
    ],
  ])("refuses before anything starts: %s", (message, args) => {
    const r = run(...args);
    expect(r.stderr).toContain(`error: ${message}`);
    expect(r.stderr).toContain("usage: run.ts");
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(r.stdout).toBe("");
    expect(r.code).toBe(2);
  });

  it("kind says which part of a Docker engine is missing and writes its summary", () => {
    const r = run("kind");
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(
      /^e2e:kind needs a Docker engine: (no `docker` command|the Docker daemon is not answering)/,
    );
    const summary = JSON.parse(r.file("summary.json"));
    expect(summary).toMatchObject({ mode: "kind", runnable: false, reason: r.stderr.trim() });
    expect(r.file("report.md")).toContain(r.stderr.trim());
    expect(r.stdout).toContain("FAIL: report");
  });

  it("runs a selected fixture scenario: summary, report, JUnit, latest, exit 0", () => {
    const r = run("lifecycle", "--scenario", "1");
    expect(r.stdout).toMatch(/PASS: report .*\/lifecycle-\d{8}T\d{6}Z\/report\.md/);
    expect(r.code).toBe(0);
    expect(readlinkSync(join(r.root, "latest"))).toMatch(/^lifecycle-\d{8}T\d{6}Z$/);
    const summary: E2eSummary = JSON.parse(r.file("summary.json"));
    expect(summary).toMatchObject({ mode: "lifecycle", pass: true, passed: 1, failed: 0, errors: [] });
    expect(summary.scenarios).toMatchObject([
      { scenario: 1, file: "e2e/test/fixtures/01-passing.scenario.ts", state: "passed" },
    ]);
    expect(summary.scenarios[0]?.steps.map((s) => s.detail)).toEqual([undefined, "target local"]);
    expect(r.file("report.md")).toContain("- ✓ **then** the target is known (2 ms): target local");
    expect(r.file("junit.xml")).toContain('<testcase classname="e2e/test/fixtures/01-passing.scenario.ts"');
  });

  it("fails the run when a selected scenario fails, and says why in the report", () => {
    const r = run("lifecycle");
    expect(r.stdout).toContain("FAIL: report");
    expect(r.code).toBe(1);
    const summary: E2eSummary = JSON.parse(r.file("summary.json"));
    expect(summary).toMatchObject({ pass: false, passed: 1, failed: 1 });
    expect(summary.scenarios[1]).toMatchObject({
      scenario: 2,
      state: "failed",
      error: "occurrences: expected 1 to be 2 // Object.is equality",
    });
    expect(r.file("report.md")).toContain("- ✗ **then** occurrences is 2 (3 ms): occurrences 1");
    expect(r.file("junit.xml")).toContain('failures="1"');
  });

  it("cluster hands the target, kubeconfig and gateway URL to the scenarios", () => {
    const r = run("cluster", "--kubeconfig", "KUBECONFIG", "--gateway-url", "http://127.0.0.1:8080", "--scenario", "1");
    expect(r.code).toBe(0);
    const summary: E2eSummary = JSON.parse(r.file("summary.json"));
    expect(summary.mode).toBe("cluster");
    expect(summary.scenarios[0]?.steps[1]?.detail).toBe(`target cluster at http://127.0.0.1:8080 (${kubeconfig})`);
  });
});
