// The data k6 passes to handleSummary(), and a plain-text rendering of it (k6's end-of-test
// summary). Pure JavaScript: scripts use it on a real k6 too, without remote jslib imports.

export interface SummaryMetric {
  type: "counter" | "gauge" | "rate" | "trend";
  contains: "default" | "time" | "data";
  values: Record<string, number>;
  thresholds?: Record<string, { ok: boolean }>;
}

export interface SummaryCheck {
  name: string;
  path: string;
  id: string;
  passes: number;
  fails: number;
}

export interface SummaryGroup {
  name: string;
  path: string;
  id: string;
  groups: SummaryGroup[];
  checks: SummaryCheck[];
}

export interface SummaryData {
  metrics: Record<string, SummaryMetric>;
  root_group: SummaryGroup;
  options: { summaryTrendStats: string[]; summaryTimeUnit: string; noColor: boolean };
  state: { isStdOutTTY: boolean; isStdErrTTY: boolean; testRunDurationMs: number };
  setup_data?: unknown;
}

function formatTime(ms: number): string {
  if (ms < 1) return `${(ms * 1000).toFixed(2)}µs`;
  if (ms < 1000) return `${ms.toFixed(2)}ms`;
  return `${(ms / 1000).toFixed(2)}s`;
}

function formatData(bytes: number): string {
  if (bytes < 1000) return `${bytes} B`;
  if (bytes < 1e6) return `${(bytes / 1e3).toFixed(1)} kB`;
  return `${(bytes / 1e6).toFixed(1)} MB`;
}

function formatValue(metric: SummaryMetric, value: number): string {
  if (metric.contains === "time") return formatTime(value);
  if (metric.contains === "data") return formatData(value);
  return Number.isInteger(value) ? String(value) : value.toFixed(4);
}

function describe(metric: SummaryMetric): string {
  const v = metric.values;
  switch (metric.type) {
    case "trend":
      return Object.entries(v)
        .map(([stat, value]) => `${stat}=${stat === "count" ? value : formatValue(metric, value)}`)
        .join(" ");
    case "rate":
      return `${((v.rate ?? 0) * 100).toFixed(2)}% ✓ ${v.passes ?? 0} ✗ ${v.fails ?? 0}`;
    case "counter":
      return `${formatValue(metric, v.count ?? 0)} ${(v.rate ?? 0).toFixed(2)}/s`;
    case "gauge":
      return `${formatValue(metric, v.value ?? 0)} min=${formatValue(metric, v.min ?? 0)} max=${formatValue(metric, v.max ?? 0)}`;
  }
}

function checkLines(group: SummaryGroup, indent: string): string[] {
  const lines: string[] = [];
  if (group.name) lines.push(`${indent}█ ${group.name}`);
  for (const c of group.checks) {
    lines.push(`${indent}  ${c.fails === 0 ? "✓" : "✗"} ${c.name}`);
    if (c.fails > 0) {
      const pct = Math.floor((100 * c.passes) / (c.passes + c.fails));
      lines.push(`${indent}   ↳  ${pct}% — ✓ ${c.passes} / ✗ ${c.fails}`);
    }
  }
  for (const g of group.groups) lines.push(...checkLines(g, `${indent}  `));
  return lines;
}

/** k6-style end-of-test summary: checks, then every metric (✓/✗ where thresholds apply). */
export function textSummary(data: SummaryData): string {
  const names = Object.keys(data.metrics).sort();
  const width = Math.max(...names.map((n) => n.length), 10) + 3;
  const lines = [...checkLines(data.root_group, "    "), ""];
  for (const name of names) {
    const metric = data.metrics[name] as SummaryMetric;
    const thresholds = Object.values(metric.thresholds ?? {});
    const mark = thresholds.length === 0 ? " " : thresholds.every((t) => t.ok) ? "✓" : "✗";
    const label = name.includes("{") ? `  { ${name.slice(name.indexOf("{") + 1, -1)} }` : name;
    lines.push(`  ${mark} ${label.padEnd(width, ".")}: ${describe(metric)}`);
    for (const [source, t] of Object.entries(metric.thresholds ?? {})) {
      if (!t.ok) lines.push(`      ✗ threshold '${source}' crossed`);
    }
  }
  lines.push("", `    test run duration: ${(data.state.testRunDurationMs / 1000).toFixed(1)}s`, "");
  return lines.join("\n");
}
