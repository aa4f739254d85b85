/**
 * The review of a run: a short real load run (its own stack, Prometheus keeping the TSDB in the
 * run folder), after which every panel of the Load test and Gateway dashboards returns data from
 * that TSDB and is drawn in Chromium; a dashboard broken on purpose is named by panel; and
 * `grafana:report RUN=` renders the run again. The queries' shaping is unit-tested on canned data.
 */
import { spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RangeSeries, StartedPrometheusServer } from "../../harness/src/components/prometheus.js";
import { repoRoot } from "../../harness/src/paths.js";
import type { LintDashboard } from "../src/lint.js";
import { panelsWithoutData, queryDashboard } from "../src/report/query.js";
import { type Review, reviewRun, suiteDashboards } from "../src/report/review.js";
import type { RunFolder } from "../src/runs.js";

const tsx = (script: string, args: string[], timeout: number) =>
  spawnSync(process.execPath, ["--import", "tsx", join(repoRoot, script), ...args], {
    cwd: repoRoot,
    encoding: "utf8",
    timeout,
  });

const panelCount = (dashboards: LintDashboard[]) =>
  dashboards.flatMap((d) => (d.panels ?? []).flatMap((p) => [p, ...(p.panels ?? [])])).filter((p) => p.type !== "row")
    .length;

describe("queryDashboard (canned Prometheus answers)", () => {
  const answers: Record<string, RangeSeries[]> = {
    up: [
      {
        metric: { instance: "a" },
        values: [
          [10, 1],
          [15, Number.NaN],
          [20, 2],
        ],
      },
    ],
    idle: [
      {
        metric: {},
        values: [
          [10, Number.NaN],
          [15, Number.POSITIVE_INFINITY],
        ],
      },
    ],
    fault: [
      {
        metric: { fault: "cut" },
        values: [
          [10, 1],
          [11, 1],
          [20, 1],
        ],
      },
    ],
  };
  const prometheus = {
    queryRange: async (promql: string) => answers[promql] ?? [],
  } as unknown as StartedPrometheusServer;
  const board = {
    uid: "b",
    title: "Board",
    panels: [
      { id: 1, type: "row", title: "Row" },
      {
        id: 2,
        type: "timeseries",
        title: "Up",
        targets: [{ refId: "A", expr: "up", legendFormat: "on {{instance}}" }],
      },
      { id: 3, type: "timeseries", title: "Idle quantile", targets: [{ refId: "A", expr: "idle" }] },
      { id: 4, type: "stat", title: "Nothing", targets: [{ refId: "A", expr: "absent_metric" }] },
    ],
    annotations: { list: [{ name: "Faults", expr: "fault", titleFormat: "{{fault}}" }] },
  } as unknown as LintDashboard;
  const window = { start: new Date(10_000), end: new Date(20_000) };

  it("keeps NaN and infinities as gaps, formats legends, and names the panels without a value", async () => {
    const d = await queryDashboard(prometheus, board, window);
    const up = d.panels.find((p) => p.title === "Up");
    expect(up?.series).toEqual([
      {
        name: "on a",
        points: [
          [10, 1],
          [15, null],
          [20, 2],
        ],
      },
    ]);
    expect(panelsWithoutData([d])).toEqual([
      `Board: panel "Idle quantile": no value over the run's window`,
      `Board: panel "Nothing": no value over the run's window`,
    ]);
  });

  it("turns an annotation's consecutive samples into regions", async () => {
    const d = await queryDashboard(prometheus, board, window);
    expect(d.regions).toEqual([
      { from: 10, to: 11, title: "cut" },
      { from: 20, to: 20, title: "cut" },
    ]);
  });
});

describe("the review of a real load run", () => {
  let run: RunFolder;
  let review: Review;
  let loadExit: number | null;
  const scratch = mkdtempSync(join(tmpdir(), "gw-review-test-"));

  beforeAll(() => {
    const r = tsx("load/suite/run.ts", ["1000rps", "--duration", "5s", "--rate", "100"], 300_000);
    const id = /load run (\S+): results in/.exec(r.stdout)?.[1];
    if (!id) throw new Error(`the load run named no run folder (exit ${r.status}):\n${r.stdout}\n${r.stderr}`);
    loadExit = r.status;
    run = { suite: "load", id, dir: join(repoRoot, "results", "load", id) };
    review = JSON.parse(readFileSync(join(run.dir, "review.json"), "utf8")) as Review;
  }, 320_000);
  afterAll(() => rmSync(scratch, { recursive: true, force: true }));

  it("ends as a load run does (0, or 1 for a missed threshold on a shared machine), the review in its summary", () => {
    expect([0, 1]).toContain(loadExit);
    const summary = JSON.parse(readFileSync(join(run.dir, "summary.json"), "utf8")) as { review?: Review };
    expect(summary.review?.pass).toBe(review.pass);
  });

  it("writes report.html and its screenshot into the run folder, linked from report.md", () => {
    for (const file of ["report.html", "report.png", "panels.json"]) expect(existsSync(join(run.dir, file))).toBe(true);
    const md = readFileSync(join(run.dir, "report.md"), "utf8");
    expect(md).toContain("[report.html](report.html)");
    expect(md).toContain("![the review report](report.png)");
    // A PNG, and not a blank one: the full page of 42 panels is several screens tall.
    const png = readFileSync(join(run.dir, "report.png"));
    expect(png.subarray(1, 4).toString()).toBe("PNG");
    expect(png.readUInt32BE(20)).toBeGreaterThan(3000);
  });

  it("every Load test and Gateway panel returns data from the run's TSDB and is drawn in Chromium", () => {
    expect(review.withoutData).toEqual([]);
    expect(review.notDrawn).toEqual([]);
    expect(review.consoleErrors).toEqual([]);
    expect(review.panels).toHaveLength(panelCount(suiteDashboards("load")));
    expect(review.panels.every((p) => p.state === "drawn" && p.series > 0)).toBe(true);
    expect(review.pass).toBe(true);
  });

  it("names the panel whose query is broken on purpose, and the browser shows it empty", async () => {
    const copy = join(scratch, run.id);
    cpSync(run.dir, copy, { recursive: true });
    const [load, gateway] = suiteDashboards("load").map((d) => structuredClone(d)) as [LintDashboard, LintDashboard];
    const throughput = gateway.panels?.find((p) => p.title === "Throughput");
    const target = throughput?.targets?.[0];
    if (!target) throw new Error("the Gateway dashboard has no Throughput panel");
    target.expr = (target.expr ?? "").replace("gateway_alerts_received_total", "gateway_alerts_recieved_total");
    const broken = await reviewRun({ ...run, dir: copy }, [load, gateway]);
    expect(broken.pass).toBe(false);
    expect(broken.withoutData).toEqual([`Kubernaut gateway: panel "Throughput": no value over the run's window`]);
    expect(broken.panels.find((p) => p.title === "Throughput")?.state).toBe("empty");
    // The run's own review is untouched: the broken copy reviewed a copy of the folder.
    expect((JSON.parse(readFileSync(join(run.dir, "review.json"), "utf8")) as Review).pass).toBe(review.pass);
  }, 120_000);

  it("grafana:report RUN=<run-id> renders the run again; a bad RUN exits 2 naming it", () => {
    rmSync(join(run.dir, "report.html"));
    const r = tsx("grafana/src/report/cli.ts", ["--run", run.id], 120_000);
    expect(r.stdout).toContain(`PASS: ${review.panels.length} panels`);
    expect(r.status).toBe(0);
    expect(existsSync(join(run.dir, "report.html"))).toBe(true);
    const bad = tsx("grafana/src/report/cli.ts", ["--run", "no-such-run"], 30_000);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain("RUN=no-such-run: no run folder results/load/no-such-run");
    expect(tsx("grafana/src/report/cli.ts", [], 30_000).stderr).toContain("RUN=<run-id> is required");
  }, 150_000);
});
