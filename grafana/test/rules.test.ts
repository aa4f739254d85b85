/**
 * The operators' alerting rules (grafana/rules/gateway.rules.yml), checked by
 * promtool itself: `check rules`, and `test rules` on gateway.rules.test.yml,
 * whose cases each alert must fire in and stay silent in. Each threshold and
 * design choice is then broken on purpose in a copy, and promtool must fail
 * naming the case that caught it. The metric names and labels are checked
 * against what the gateway registers, and the PrometheusRule of the kustomize
 * base against the rule file.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { parse, parseAllDocuments, stringify } from "yaml";
import { createMetrics } from "../../gateway/src/metrics.js";
import type { KubeObject } from "../../harness/src/components/kube-api.js";
import { binary, repoRoot, scratchDir } from "../../harness/src/paths.js";
import { MANIFEST_FILE, RULES_FILE, RULES_TEST_FILE, renderPrometheusRule } from "../rules/prometheus-rule.js";

interface Rule {
  alert: string;
  expr: string;
  for?: string;
  labels: { severity: string };
  annotations: Record<string, string>;
}
interface RuleFile {
  groups: { name: string; rules: Rule[] }[];
}
interface ExpAlert {
  exp_labels: Record<string, string>;
  exp_annotations: Record<string, string>;
}
interface TestGroup {
  name: string;
  input_series: { series: string; values: string }[];
  alert_rule_test?: { eval_time: string; alertname: string; exp_alerts: ExpAlert[] }[];
}

/** Labels a Prometheus scrape adds to every series (Kubernetes service discovery and the job). */
const TARGET_LABELS = ["namespace", "job", "pod", "instance"];

const rulesText = readFileSync(RULES_FILE, "utf8");
const rules = (parse(rulesText) as RuleFile).groups.flatMap((g) => g.rules);
const testGroups = (parse(readFileSync(RULES_TEST_FILE, "utf8")) as { tests: TestGroup[] }).tests;

function promtool(...args: string[]): { status: number | null; output: string } {
  let path: string;
  try {
    path = binary("promtool");
  } catch {
    throw new Error("promtool not found: it comes with Debian's prometheus package, which './taskw setup' installs");
  }
  const res = spawnSync(path, args, { encoding: "utf8" });
  return { status: res.status, output: `${res.stdout}${res.stderr}` };
}

/** Series names and label names the gateway exports, a histogram as its _bucket, _sum and _count. */
function exportedSeries(): Map<string, string[]> {
  const series = new Map<string, string[]>();
  for (const metric of createMetrics().registry.getMetricsAsArray()) {
    const { name, labelNames, type } = metric as unknown as { name: string; labelNames: string[]; type: string };
    if (type !== "histogram") series.set(name, labelNames);
    else {
      series.set(`${name}_bucket`, [...labelNames, "le"]);
      series.set(`${name}_sum`, labelNames);
      series.set(`${name}_count`, labelNames);
    }
  }
  return series;
}

describe("grafana/rules/gateway.rules.yml (promtool)", () => {
  it("passes promtool check rules", () => {
    const res = promtool("check", "rules", RULES_FILE);
    expect(res.output).toContain(`SUCCESS: ${rules.length} rules found`);
    expect(res.status, res.output).toBe(0);
  });

  it("passes promtool test rules", () => {
    const res = promtool("test", "rules", RULES_TEST_FILE);
    expect(res.output, res.output).toContain("SUCCESS");
    expect(res.status, res.output).toBe(0);
  });

  it("every alert has a case where it fires and one where it stays silent", () => {
    const cases = testGroups.flatMap((g) => (g.alert_rule_test ?? []).map((t) => ({ group: g.name, ...t })));
    for (const { alert, labels } of rules) {
      const of = cases.filter((c) => c.alertname === alert);
      const firing = of.filter((c) => c.exp_alerts.some((a) => a.exp_labels.severity === labels.severity));
      const silent = of.filter((c) => !c.exp_alerts.some((a) => a.exp_labels.severity === labels.severity));
      expect(firing.length, `${alert} (${labels.severity}) firing cases`).toBeGreaterThan(0);
      expect(silent.length, `${alert} (${labels.severity}) silent cases`).toBeGreaterThan(0);
    }
    // The alerts that measure traffic also stay silent without any.
    for (const alert of [
      "GatewayProcessingLatencyHigh",
      "GatewayRemediationRequestCreationFailing",
      "GatewayThroughputHigh",
    ]) {
      const idle = cases.filter((c) => c.alertname === alert && c.group.endsWith("without traffic"));
      expect(idle.length, `${alert} without traffic`).toBeGreaterThan(0);
      for (const c of idle) expect(c.exp_alerts, c.group).toEqual([]);
    }
  });

  it("uses only series and labels the gateway exports (gateway/src/metrics.ts)", () => {
    const exported = exportedSeries();
    const labelsOf = (names: string[]) => new Set([...TARGET_LABELS, ...names.flatMap((n) => exported.get(n) ?? [])]);
    for (const rule of rules) {
      const names = [...new Set(rule.expr.match(/gateway_\w+/g) ?? [])];
      for (const name of names) expect(exported.has(name), `${rule.alert}: ${name}`).toBe(true);
      const known = labelsOf(names);
      const grouped = [...rule.expr.matchAll(/by \(([^)]*)\)/g)].flatMap((m) => (m[1] ?? "").split(/,\s*/));
      const templated = [...JSON.stringify(rule.annotations).matchAll(/\$labels\.(\w+)/g)].map((m) => m[1] ?? "");
      for (const label of [...grouped, ...templated])
        expect(known.has(label), `${rule.alert}: label ${label}`).toBe(true);
    }
    for (const group of testGroups) {
      for (const { series } of group.input_series) {
        const [, name = "", body = ""] = /^(\w+)\{(.*)\}$/.exec(series) ?? [];
        expect(exported.has(name), `${group.name}: ${name}`).toBe(true);
        const labels = [...body.matchAll(/(\w+)="/g)].map((m) => m[1] ?? "");
        for (const label of labels) expect(labelsOf([name]).has(label), `${group.name}: ${name}{${label}}`).toBe(true);
      }
    }
  });
});

describe("the rule tests can fail: a copy with one thing broken fails promtool test rules, naming the case", () => {
  const dir = scratchDir("rules");
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const ruleOf = (file: RuleFile, alert: string, severity: string): Rule => {
    const rule = file.groups.flatMap((g) => g.rules).find((r) => r.alert === alert && r.labels.severity === severity);
    if (!rule) throw new Error(`no ${severity} ${alert} in gateway.rules.yml`);
    return rule;
  };
  /** Replaces the comparison the expression ends with. */
  const threshold = (alert: string, severity: string, value: number) => (file: RuleFile) => {
    const rule = ruleOf(file, alert, severity);
    if (!/>\s*[\d.]+\s*$/.test(rule.expr)) throw new Error(`${alert} does not end with a threshold`);
    rule.expr = rule.expr.replace(/>\s*[\d.]+\s*$/, `> ${value}`);
  };
  const edit = (alert: string, severity: string, change: (rule: Rule) => void) => (file: RuleFile) =>
    change(ruleOf(file, alert, severity));
  const replaceInExpr = (from: string | RegExp, to: string) => (rule: Rule) => {
    const next = rule.expr.replace(from, to);
    if (next === rule.expr) throw new Error(`${rule.alert}: ${from} not in its expression`);
    rule.expr = next;
  };

  const LATENCY = "GatewayProcessingLatencyHigh";
  const FAILURES = "GatewayRemediationRequestCreationFailing";
  const THROUGHPUT = "GatewayThroughputHigh";
  const REDIS = "GatewayRedisUnavailable";
  const AUDIT = "GatewayAuditEventsDropped";

  /** The rule file as these tests write it, so a failure comes from the breakage alone. */
  function testCopy(name: string, file: RuleFile): ReturnType<typeof promtool> {
    const copy = join(dir, name.replace(/\W+/g, "-"));
    mkdirSync(copy);
    writeFileSync(join(copy, basename(RULES_FILE)), stringify(file));
    copyFileSync(RULES_TEST_FILE, join(copy, basename(RULES_TEST_FILE)));
    return promtool("test", "rules", join(copy, basename(RULES_TEST_FILE)));
  }

  it("an unbroken copy passes", () => {
    const res = testCopy("unbroken", parse(rulesText) as RuleFile);
    expect(res.status, res.output).toBe(0);
  });

  it.each<[string, (file: RuleFile) => void, string, string]>([
    ["p95 warning at 95 ms", threshold(LATENCY, "warning", 0.095), LATENCY, "latency 97.5 ms, just below warning"],
    ["p95 warning at 110 ms", threshold(LATENCY, "warning", 0.11), LATENCY, "latency 105 ms, warning"],
    [
      "p95 critical at 180 ms",
      threshold(LATENCY, "critical", 0.18),
      LATENCY,
      "latency 190 ms, warning but just below critical",
    ],
    ["p95 critical at 230 ms", threshold(LATENCY, "critical", 0.23), LATENCY, "latency 220 ms, critical (and warning)"],
    [
      "failures warning at 0.8 %",
      threshold(FAILURES, "warning", 0.008),
      FAILURES,
      "creation failures 0.9 %, just below warning",
    ],
    ["failures warning at 1.2 %", threshold(FAILURES, "warning", 0.012), FAILURES, "creation failures 1.1 %, warning"],
    [
      "failures critical at 4 %",
      threshold(FAILURES, "critical", 0.04),
      FAILURES,
      "creation failures 4.5 %, warning but just below critical",
    ],
    [
      "failures critical at 6 %",
      threshold(FAILURES, "critical", 0.06),
      FAILURES,
      "creation failures 5.5 %, critical (and warning)",
    ],
    [
      "attempts as created + failed",
      edit(
        FAILURES,
        "warning",
        replaceInExpr(
          /sum by \(namespace, job\) \(rate\(\{__name__=~"[^"]+"\}\[5m\]\)\)/,
          "sum by (namespace, job) (rate(gateway_crd_created_total[5m])) + sum by (namespace, job) (rate(gateway_crd_creation_failures_total[5m]))",
        ),
      ),
      FAILURES,
      "every creation fails (no created series at all)",
    ],
    [
      "throughput warning at 780/s",
      threshold(THROUGHPUT, "warning", 780),
      THROUGHPUT,
      "throughput 790/s, just below warning",
    ],
    ["throughput warning at 820/s", threshold(THROUGHPUT, "warning", 820), THROUGHPUT, "throughput 810/s, warning"],
    [
      "throughput critical at 980/s",
      threshold(THROUGHPUT, "critical", 980),
      THROUGHPUT,
      "throughput 990/s, warning but just below critical",
    ],
    [
      "throughput critical at 1020/s",
      threshold(THROUGHPUT, "critical", 1020),
      THROUGHPUT,
      "throughput 1010/s, critical (and warning)",
    ],
    [
      "throughput per deployment instead of per pod",
      edit(THROUGHPUT, "warning", replaceInExpr("sum by (namespace, job, pod, instance)", "sum by (namespace, job)")),
      THROUGHPUT,
      "throughput 1200/s spread over two pods, 600/s each",
    ],
    [
      "Redis alert after 1 minute",
      edit(REDIS, "critical", (r) => {
        r.for = "1m";
      }),
      REDIS,
      "Redis unavailable for 2 minutes, and a short failover",
    ],
    [
      "audit drops without the new-series branch",
      edit(AUDIT, "critical", (r) => {
        r.expr = "increase(gateway_audit_events_dropped_total[5m]) > 0";
      }),
      AUDIT,
      "audit events dropped, the process's first drops (a new series)",
    ],
    [
      "audit drops only above 4",
      edit(AUDIT, "critical", replaceInExpr("[5m]) > 0", "[5m]) > 4")),
      AUDIT,
      "audit events dropped, a counter that grows again",
    ],
    [
      "another annotation text",
      edit(LATENCY, "warning", (r) => {
        r.annotations.description = r.annotations.description?.replace("above 100ms", "above 0.1s") ?? "";
      }),
      LATENCY,
      "latency 105 ms, warning",
    ],
  ])("%s", (what, breakIt, alert, caseName) => {
    const file = parse(rulesText) as RuleFile;
    breakIt(file);
    const res = testCopy(what, file);
    expect(res.status, res.output).toBe(1);
    expect(res.output).toContain(`name: ${caseName},\n    alertname: ${alert},`);
  });
});

describe("the PrometheusRule of gateway/deploy/base", () => {
  it("is generated from the rule file and up to date (else: npx tsx grafana/rules/prometheus-rule.ts)", () => {
    expect(existsSync(MANIFEST_FILE), MANIFEST_FILE).toBe(true);
    expect(readFileSync(MANIFEST_FILE, "utf8")).toBe(renderPrometheusRule(rulesText));
  });

  it("carries exactly the rule file's groups after kustomize build", () => {
    const text = execFileSync(binary("kustomize"), ["build", join(repoRoot, "gateway", "deploy", "base")], {
      encoding: "utf8",
    });
    const objects = parseAllDocuments(text).map((d) => d.toJS() as KubeObject & { spec?: unknown });
    const rule = objects.filter((o) => o.kind === "PrometheusRule");
    expect(rule).toHaveLength(1);
    expect(rule[0]?.apiVersion).toBe("monitoring.coreos.com/v1");
    expect(rule[0]?.metadata.namespace).toBe("kubernaut-system");
    expect(rule[0]?.spec).toEqual({ groups: (parse(rulesText) as RuleFile).groups });
  });
});
