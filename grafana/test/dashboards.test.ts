/**
 * The generated dashboards: committed as generated, lint-clean, every query valid PromQL over
 * series that really exist, the seed's thresholds drawn, the provisioning they rely on; and the
 * lint itself fails on broken copies, naming the panel.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { Histogram } from "prom-client";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { createMetrics } from "../../gateway/src/metrics.js";
import { repoRoot } from "../../harness/src/paths.js";
import { Registry } from "../../load/runner/engine/metrics.js";
import { remoteWriteConfig, toTimeSeries } from "../../load/runner/engine/remote-write.js";
import { builtin } from "../../load/runner/engine/runtime.js";
import { PROMETHEUS_UID } from "../src/dashboards/shared.js";
import { DASHBOARD_DIR, renderDashboards } from "../src/generate.js";
import {
  type LintDashboard,
  type LintPanel,
  lintDashboard,
  panelQueries,
  provisionedDatasourceUids,
  type SeriesCatalog,
  unknownNames,
  unparsableQueries,
} from "../src/lint.js";

const PROVISIONING = join(repoRoot, "grafana", "provisioning");
const rendered = renderDashboards();
const dashboards = Object.fromEntries(
  Object.entries(rendered).map(([file, text]) => [file, JSON.parse(text) as LintDashboard]),
);
const gateway = dashboards["gateway.json"] as LintDashboard;
const allQueries = () => Object.values(dashboards).flatMap((d) => panelQueries(d));
const uids = provisionedDatasourceUids();

/** What the gateway, the load runner and the chaos runner export, from their own code. */
async function exportedSeries(): Promise<SeriesCatalog> {
  const catalog = new Map<string, Set<string>>();
  const add = (name: string, labels: Iterable<string>) => catalog.set(name, new Set(labels));

  const { registry } = createMetrics();
  for (const { name } of await registry.getMetricsAsJSON()) {
    const metric = registry.getSingleMetric(name);
    const labels = (metric as unknown as { labelNames: string[] }).labelNames;
    if (metric instanceof Histogram) {
      add(`${name}_bucket`, [...labels, "le"]);
      add(`${name}_sum`, labels);
      add(`${name}_count`, labels);
    } else add(name, labels);
  }

  // Every tag the runner and the scripts put on a sample (load/runner/k6/http.ts, sampleTags,
  // check()), written as labels by the remote-write output itself.
  const tags = {
    testid: "t",
    scenario: "s",
    group: "g",
    proto: "HTTP/1.1",
    method: "POST",
    name: "n",
    status: "202",
    expected_response: "true",
    error_code: "1",
    check: "c",
  };
  const k6 = new Registry();
  for (const metric of Object.values(builtin)) k6.define(metric.name, metric.type, metric.contains).add(1, tags);
  for (const series of toTimeSeries(k6, remoteWriteConfig({}).trendStats, Date.now())) {
    const name = series.labels.find(([k]) => k === "__name__")?.[1] as string;
    add(
      name,
      series.labels.map(([k]) => k).filter((k) => k !== "__name__"),
    );
  }

  // Remote-written by the chaos runner (chaos/src/fault-series.ts): 1 while a fault is injected.
  add("chaos_fault_active", ["experiment", "fault"]);
  return catalog;
}

describe("grafana/dashboards", () => {
  it("are what grafana/src/generate.ts writes", () => {
    expect(readdirSync(DASHBOARD_DIR).sort(), "run task grafana:dashboards").toEqual(Object.keys(rendered).sort());
    for (const [file, text] of Object.entries(rendered)) {
      const committed = readFileSync(join(DASHBOARD_DIR, file), "utf8");
      expect(committed === text, `grafana/dashboards/${file} is stale: run task grafana:dashboards`).toBe(true);
    }
  });

  it("pass the lint", () => {
    for (const dashboard of Object.values(dashboards)) expect(lintDashboard(dashboard, uids)).toEqual([]);
  });

  it("query in valid PromQL (promtool)", () => {
    expect(unparsableQueries(allQueries())).toEqual([]);
  });

  it("query only series and labels that are exported", async () => {
    expect(unknownNames(allQueries(), await exportedSeries())).toEqual([]);
  });

  it("draw the seed's alerting thresholds on the panels they belong to", () => {
    const limits = (title: string) => {
      const panel = gateway.panels?.find((p) => p.title === title) as LintPanel & {
        fieldConfig: {
          defaults: { thresholds?: { steps: { value: number | null }[] }; custom?: Record<string, unknown> };
        };
      };
      expect(panel, title).toBeDefined();
      const defaults = panel.fieldConfig.defaults;
      if (panel.type === "timeseries") expect(defaults.custom?.thresholdsStyle, title).toEqual({ mode: "line" });
      return defaults.thresholds?.steps.map((s) => s.value);
    };
    for (const title of ["Throughput", "Alerts received by source and severity"]) {
      expect(limits(title)).toEqual([null, 800, 1000]);
    }
    for (const title of ["Processing p95", "Processing p95 by source and outcome"]) {
      expect(limits(title)).toEqual([null, 0.1, 0.2]);
    }
    for (const title of ["Creation failures", "Creation failure ratio"])
      expect(limits(title)).toEqual([null, 0.01, 0.05]);
  });

  it("substitute the variables of the queries they list", () => {
    const queries = panelQueries(dashboards["load-test.json"] as LintDashboard, { testid: "1000rps-run" });
    expect(queries.filter((q) => q.expr.includes('testid="1000rps-run"')).length).toBeGreaterThan(10);
    expect(queries.filter((q) => q.expr.includes("$"))).toEqual([]);
    expect(queries.find((q) => q.panelTitle === "Request rate")?.expr).toBe(
      'sum by (status) (rate(k6_http_reqs_total{testid="1000rps-run"}[1m]))',
    );
    const chaos = panelQueries(dashboards["chaos.json"] as LintDashboard);
    expect(chaos).toContainEqual(expect.objectContaining({ source: "annotation", expr: "chaos_fault_active == 1" }));
  });
});

describe("grafana/provisioning", () => {
  const load = (path: string) => parse(readFileSync(join(PROVISIONING, path), "utf8"));

  it("provides the Prometheus every panel names", () => {
    const doc = load("datasources/prometheus.yaml");
    expect(doc.apiVersion).toBe(1);
    expect(doc.datasources).toEqual([
      expect.objectContaining({ type: "prometheus", uid: PROMETHEUS_UID, url: "http://prometheus:9090" }),
    ]);
  });

  it("points a file provider at the dashboards' mount", () => {
    const doc = load("dashboards/kubernaut.yaml");
    expect(doc.apiVersion).toBe(1);
    expect(doc.providers).toEqual([
      expect.objectContaining({
        type: "file",
        options: expect.objectContaining({ path: "/var/lib/grafana/dashboards" }),
      }),
    ]);
  });
});

describe("the dashboard lint", () => {
  const panel = (d: LintDashboard, title: string) => d.panels?.find((p) => p.title === title) as LintPanel;

  it("reports each broken panel by its title", () => {
    const broken = structuredClone(gateway);
    panel(broken, "Deduplicated").id = panel(broken, "Throughput").id;
    (panel(broken, "HTTP p99 by route").gridPos as { w: number }).w = 16;
    const undefinedVariable = panel(broken, "Audit buffer").targets?.[0] as { expr: string };
    undefinedVariable.expr = 'sum(gateway_audit_buffer_depth{instance="$instance"})';
    (panel(broken, "Redis operations by result").targets?.[0] as { datasource: unknown }).datasource = {
      type: "prometheus",
      uid: "elsewhere",
    };
    delete panel(broken, "Memory").fieldConfig?.defaults?.unit;
    panel(broken, "CPU").targets = [];
    const problems = lintDashboard(broken, uids);
    const expected = [
      /panel "Deduplicated": id \d+ is also the id of panel "Throughput"/,
      /panel "HTTP p99 by route": gridPos x 12 w 16 h 8 does not fit in 24 columns/,
      /panel "Audit buffer" query A: uses \$instance, which the dashboard does not define/,
      /panel "Redis operations by result" query A: datasource uid "elsewhere" is not provisioned/,
      /panel "Memory": has no unit/,
      /panel "CPU": has no query with an expr/,
    ];
    for (const pattern of expected) expect(problems).toContainEqual(expect.stringMatching(pattern));
    expect(problems.length).toBe(expected.length);
  });

  it("reports overlapping panels", () => {
    const broken = structuredClone(gateway);
    (panel(broken, "Deduplicated").gridPos as { x: number }).x = 2;
    expect(lintDashboard(broken, uids)).toContainEqual(
      expect.stringMatching(/panel "Deduplicated": overlaps panel "Throughput"/),
    );
  });

  it("reports a query promtool cannot parse, naming its panel", () => {
    const queries = panelQueries(gateway);
    const throughput = queries.find((q) => q.panelTitle === "Throughput");
    if (!throughput) throw new Error("no Throughput query");
    throughput.expr = "sum(rate(gateway_alerts_received_total[1m])";
    expect(unparsableQueries(queries)).toEqual([
      expect.stringMatching(
        /^Kubernaut gateway: Throughput query A: could not parse expression: .*unclosed left parenthesis/,
      ),
    ]);
  });

  it("reports metric and label names no component exports", async () => {
    const catalog = await exportedSeries();
    const query = (expr: string) => ({ dashboard: "d", panelTitle: "p", refId: "A", expr, source: "panel" as const });
    expect(
      unknownNames(
        [
          query("sum(rate(gateway_alerts_recieved_total[1m]))"),
          query('sum(rate(gateway_crd_creation_failures_total{reasn="x"}[1m]))'),
          query("sum by (severity) (rate(gateway_crd_created_total[1m]))"),
          query('sum by (le, route) (rate(gateway_http_request_duration_seconds_bucket{route=~"/api/.*"}[1m]))'),
        ],
        catalog,
      ),
    ).toEqual([
      "d: p query A: no component exports gateway_alerts_recieved_total",
      "d: p query A: gateway_crd_creation_failures_total has no label reasn",
      "d: p query A: none of its series has the label severity",
    ]);
  });
});
