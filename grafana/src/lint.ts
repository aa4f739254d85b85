// Static checks of generated dashboards (grafana/test/dashboards.test.ts), and the extraction of
// their queries with the variables substituted, for checks that run them.
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse, stringify } from "yaml";
import { binary, repoRoot } from "../../harness/src/paths.js";

/** The parts of a dashboard's JSON the checks read; loose, so a broken copy still type-checks. */
export interface LintDatasource {
  type?: string;
  uid?: string;
}

export interface LintPanel {
  id?: number;
  type?: string;
  title?: string;
  gridPos?: { x: number; y: number; w: number; h: number };
  datasource?: LintDatasource;
  targets?: { refId?: string; expr?: string; datasource?: LintDatasource }[];
  fieldConfig?: { defaults?: { unit?: string } };
  panels?: LintPanel[];
}

export interface LintDashboard {
  title?: string;
  panels?: LintPanel[];
  templating?: {
    list?: {
      name: string;
      type?: string;
      query?: unknown;
      datasource?: LintDatasource;
      current?: { value?: unknown };
    }[];
  };
  annotations?: { list?: { name?: string; builtIn?: number; expr?: string; datasource?: LintDatasource }[] };
}

/** One query of a dashboard, its variables replaced by values. */
export interface PanelQuery {
  dashboard: string;
  /** The panel's title, or `annotation "<name>"`. */
  panelTitle: string;
  refId: string;
  expr: string;
  source: "panel" | "annotation";
}

/**
 * Grafana's own variables the dashboards may use, with the values a query gets in their place
 * when it is run outside Grafana: a one-hour range seen at a 15 s step.
 */
export const GLOBAL_VARIABLES: Readonly<Record<string, string>> = {
  __rate_interval: "1m",
  __interval: "15s",
  __interval_ms: "15000",
  __range: "1h",
  __range_s: "3600",
  __range_ms: "3600000",
};

const GRID_COLUMNS = 24;
const VARIABLE = /\$\{(\w+)(?::[^}]*)?\}|\[\[(\w+)(?::[^\]]*)?\]\]|\$(\w+)/g;

/** Names of the variables `text` uses, in any of Grafana's three syntaxes. */
export function variablesIn(text: string): string[] {
  return [...text.matchAll(VARIABLE)].map((m) => (m[1] ?? m[2] ?? m[3]) as string);
}

/** `text` with each variable in `values` replaced; others are left as they are. */
export function substitute(text: string, values: Readonly<Record<string, string>>): string {
  return text.replace(
    VARIABLE,
    (whole, a?: string, b?: string, c?: string) => values[(a ?? b ?? c) as string] ?? whole,
  );
}

/** Every panel, rows and the panels of collapsed rows included. */
function allPanels(dashboard: LintDashboard): LintPanel[] {
  return (dashboard.panels ?? []).flatMap((p) => [p, ...(p.panels ?? [])]);
}

const isRow = (panel: LintPanel) => panel.type === "row";
const titleOf = (panel: LintPanel) => `panel "${panel.title ?? `#${panel.id}`}"`;

/** The uids of the datasources in Grafana provisioning files (`datasources:` of each YAML). */
export function provisionedDatasourceUids(dir = join(repoRoot, "grafana", "provisioning", "datasources")): Set<string> {
  const uids = new Set<string>();
  for (const file of readdirSync(dir).filter((f) => /\.ya?ml$/.test(f))) {
    const doc = parse(readFileSync(join(dir, file), "utf8")) as { datasources?: { uid?: string }[] } | null;
    for (const ds of doc?.datasources ?? []) if (ds.uid) uids.add(ds.uid);
  }
  return uids;
}

/**
 * What is wrong with a dashboard, one line per problem naming the panel: ids, grid positions,
 * variables, datasources, units and queries.
 */
export function lintDashboard(dashboard: LintDashboard, datasourceUids: ReadonlySet<string>): string[] {
  const problems: string[] = [];
  const report = (where: string, message: string) =>
    problems.push(`${dashboard.title ?? "dashboard"}: ${where}: ${message}`);
  const defined = new Set([...Object.keys(GLOBAL_VARIABLES), ...(dashboard.templating?.list ?? []).map((v) => v.name)]);
  const checkVariables = (where: string, text: string) => {
    for (const name of new Set(variablesIn(text))) {
      if (!defined.has(name)) report(where, `uses $${name}, which the dashboard does not define`);
    }
  };
  const checkDatasource = (where: string, ds: LintDatasource | undefined) => {
    if (!ds?.uid) report(where, "names no datasource uid");
    else if (!datasourceUids.has(ds.uid)) report(where, `datasource uid "${ds.uid}" is not provisioned`);
  };

  const panels = allPanels(dashboard);
  const byId = new Map<number, LintPanel>();
  const titles = new Map<string, LintPanel>();
  for (const panel of panels) {
    const where = titleOf(panel);
    if (panel.id === undefined) report(where, "has no id");
    else {
      const other = byId.get(panel.id);
      if (other) report(where, `id ${panel.id} is also the id of ${titleOf(other)}`);
      else byId.set(panel.id, panel);
    }

    const pos = panel.gridPos;
    if (!pos) report(where, "has no gridPos");
    else if (pos.x < 0 || pos.w < 1 || pos.h < 1 || pos.x + pos.w > GRID_COLUMNS) {
      report(where, `gridPos x ${pos.x} w ${pos.w} h ${pos.h} does not fit in ${GRID_COLUMNS} columns`);
    }

    if (isRow(panel)) continue;
    // Reports name panels by title, so a title must say which panel.
    const sameTitle = titles.get(panel.title ?? "");
    if (sameTitle) report(where, `has the same title as panel id ${sameTitle.id}`);
    else titles.set(panel.title ?? "", panel);
    if (!panel.fieldConfig?.defaults?.unit) report(where, "has no unit (fieldConfig.defaults.unit)");
    if (panel.datasource) checkDatasource(where, panel.datasource);
    const targets = panel.targets ?? [];
    if (!targets.some((t) => t.expr?.trim())) report(where, "has no query with an expr");
    for (const target of targets) {
      const at = `${where} query ${target.refId ?? "?"}`;
      checkDatasource(at, target.datasource ?? panel.datasource);
      checkVariables(at, target.expr ?? "");
    }
  }

  // Overlaps among the panels on the grid (a collapsed row's panels are placed when it opens).
  const placed = (dashboard.panels ?? []).filter((p) => p.gridPos);
  for (const [i, a] of placed.entries()) {
    for (const b of placed.slice(i + 1)) {
      const [p, q] = [a.gridPos, b.gridPos] as [NonNullable<LintPanel["gridPos"]>, NonNullable<LintPanel["gridPos"]>];
      if (p.x < q.x + q.w && q.x < p.x + p.w && p.y < q.y + q.h && q.y < p.y + p.h) {
        report(titleOf(b), `overlaps ${titleOf(a)}`);
      }
    }
  }

  for (const variable of dashboard.templating?.list ?? []) {
    const where = `variable $${variable.name}`;
    // Only query variables ask a datasource (custom, constant, interval ones do not).
    if (variable.type === "query") checkDatasource(where, variable.datasource);
    if (typeof variable.query === "string") checkVariables(where, variable.query);
  }
  for (const annotation of dashboard.annotations?.list ?? []) {
    if (annotation.builtIn) continue;
    const where = `annotation "${annotation.name ?? "?"}"`;
    checkDatasource(where, annotation.datasource);
    checkVariables(where, annotation.expr ?? "");
  }
  return problems;
}

/**
 * Every PromQL query of the dashboard (panels and annotations), variables substituted: `values`
 * first, then the variable's current value, then "sample"; Grafana's own from GLOBAL_VARIABLES.
 */
export function panelQueries(dashboard: LintDashboard, values: Readonly<Record<string, string>> = {}): PanelQuery[] {
  const defaults = Object.fromEntries(
    (dashboard.templating?.list ?? []).map((v) => {
      const current = v.current?.value;
      return [v.name, typeof current === "string" && current ? current : "sample"];
    }),
  );
  const all = { ...GLOBAL_VARIABLES, ...defaults, ...values };
  const name = dashboard.title ?? "dashboard";
  const queries: PanelQuery[] = [];
  for (const panel of allPanels(dashboard)) {
    for (const target of panel.targets ?? []) {
      if (!target.expr?.trim()) continue;
      queries.push({
        dashboard: name,
        panelTitle: panel.title ?? `#${panel.id}`,
        refId: target.refId ?? "",
        expr: substitute(target.expr, all),
        source: "panel",
      });
    }
  }
  for (const annotation of dashboard.annotations?.list ?? []) {
    if (annotation.builtIn || !annotation.expr) continue;
    queries.push({
      dashboard: name,
      panelTitle: `annotation "${annotation.name ?? "?"}"`,
      refId: "",
      expr: substitute(annotation.expr, all),
      source: "annotation",
    });
  }
  return queries;
}

const locate = (q: PanelQuery) => `${q.dashboard}: ${q.panelTitle}${q.refId ? ` query ${q.refId}` : ""}`;

/**
 * Queries that do not parse as PromQL, by promtool's parser: one recording rule per query in a
 * group named after it, so promtool's message names the panel.
 */
export function unparsableQueries(queries: PanelQuery[]): string[] {
  const dir = mkdtempSync(join(tmpdir(), "grafana-lint-"));
  try {
    const file = join(dir, "queries.rules.yml");
    const groups = queries.map((q, i) => ({
      name: `q${i}`,
      rules: [{ record: `dashboard_query_${i}`, expr: q.expr }],
    }));
    writeFileSync(file, stringify({ groups }));
    const res = spawnSync(binary("promtool"), ["check", "rules", file], { encoding: "utf8" });
    if (res.status === 0) return [];
    const output = `${res.stdout}${res.stderr}`;
    const problems = [...output.matchAll(/group "q(\d+)", rule \d+, "[^"]*": (.*)/g)].map(
      ([, i, message]) => `${locate(queries[Number(i)] as PanelQuery)}: ${message}`,
    );
    return problems.length > 0 ? problems : [`promtool check rules failed: ${output.trim()}`];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Metric name → its label names: what the components really export. */
export type SeriesCatalog = ReadonlyMap<string, ReadonlySet<string>>;

/** Labels Prometheus adds to every scraped series. */
const TARGET_LABELS = new Set(["job", "instance"]);
/** Words of PromQL that are not metric names when they stand alone. */
const NOT_METRICS = new Set([
  "by",
  "without",
  "on",
  "ignoring",
  "group_left",
  "group_right",
  "and",
  "or",
  "unless",
  "bool",
  "offset",
  "inf",
  "nan",
]);

/**
 * The metric names and label names a PromQL expression refers to: names with the labels their
 * matchers use, and the labels of by/without/on/ignoring/group_* clauses. A light scan, not a
 * parser (unparsableQueries is the parser): enough for the dashboards' own queries.
 */
export function namesIn(expr: string): { metrics: Map<string, Set<string>>; grouping: Set<string> } {
  const metrics = new Map<string, Set<string>>();
  const grouping = new Set<string>();
  const add = (name: string, labels: string[]) => {
    const set = metrics.get(name) ?? new Set<string>();
    for (const l of labels) set.add(l);
    metrics.set(name, set);
  };
  let rest = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""')
    // Ranges and subquery steps.
    .replace(/\[[^\]]*\]/g, " ");
  rest = rest.replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)/g, (_, labels: string) => {
    for (const label of labels.split(",")) if (label.trim()) grouping.add(label.trim());
    return " ";
  });
  rest = rest.replace(/([A-Za-z_:][\w:]*)?\s*\{([^}]*)\}/g, (_, name: string | undefined, matchers: string) => {
    add(
      name ?? "",
      [...matchers.matchAll(/([A-Za-z_]\w*)\s*(?:=~|!~|!=|=)/g)].map((m) => m[1] as string),
    );
    return " ";
  });
  for (const [, name, call] of rest.matchAll(/(?<![\w.])([A-Za-z_:][\w:]*)(\s*\()?/g)) {
    if (!call && !NOT_METRICS.has((name as string).toLowerCase())) add(name as string, []);
  }
  return { metrics, grouping };
}

/** Metric and label names the queries use that `catalog` does not have. */
export function unknownNames(queries: PanelQuery[], catalog: SeriesCatalog): string[] {
  const problems: string[] = [];
  for (const q of queries) {
    const { metrics, grouping } = namesIn(q.expr);
    const known = new Set(TARGET_LABELS);
    for (const [name, labels] of metrics) {
      const exported = catalog.get(name);
      if (!exported) {
        problems.push(`${locate(q)}: ${name ? `no component exports ${name}` : "a selector without a metric name"}`);
        continue;
      }
      for (const label of exported) known.add(label);
      for (const label of labels) {
        if (!exported.has(label) && !TARGET_LABELS.has(label))
          problems.push(`${locate(q)}: ${name} has no label ${label}`);
      }
    }
    for (const label of grouping) {
      if (!known.has(label)) problems.push(`${locate(q)}: none of its series has the label ${label}`);
    }
  }
  return problems;
}
