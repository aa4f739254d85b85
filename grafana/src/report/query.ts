// A dashboard's panels run against a real Prometheus over one window, as Grafana would run them:
// the data behind the review report and the check that every panel returns something.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parse } from "yaml";
import type { RangeSeries, StartedPrometheusServer } from "../../../harness/src/components/prometheus.js";
import { repoRoot } from "../../../harness/src/paths.js";
import { PROMETHEUS_UID } from "../dashboards/shared.js";
import { type LintDashboard, type LintPanel, substitute } from "../lint.js";

export interface Window {
  start: Date;
  end: Date;
}

export interface PanelSeries {
  name: string;
  /** [unix seconds, value]; NaN and infinities (an idle histogram_quantile) are gaps. */
  points: Array<[number, number | null]>;
}

export interface Threshold {
  value: number;
  color: string;
}

export interface ReviewPanel {
  id: number;
  type: string;
  title: string;
  description?: string;
  gridPos: { x: number; y: number; w: number; h: number };
  unit?: string;
  min?: number;
  max?: number;
  /** The steps above the base colour: the seed's warning and critical lines. */
  thresholds: Threshold[];
  series: PanelSeries[];
  /** Queries Prometheus refused, with its message. */
  errors: string[];
}

export interface Region {
  from: number;
  to: number;
  title: string;
}

export interface ReviewDashboard {
  uid: string;
  title: string;
  panels: ReviewPanel[];
  /** Annotation queries' regions (the chaos fault windows), unix seconds. */
  regions: Region[];
}

/** The parts of a panel the report reads beyond what the lint reads. */
type Panel = LintPanel & {
  description?: string;
  targets?: { refId?: string; expr?: string; legendFormat?: string }[];
  fieldConfig?: {
    defaults?: {
      unit?: string;
      min?: number;
      max?: number;
      thresholds?: { steps?: { value: number | null; color: string }[] };
    };
  };
};

type Dashboard = LintDashboard & {
  uid?: string;
  annotations?: { list?: { name?: string; builtIn?: number; expr?: string; titleFormat?: string }[] };
};

/** At most this many points per series: enough for a chart a screen wide. */
const MAX_POINTS = 400;

/**
 * The provisioned datasource's `timeInterval` in seconds: Grafana's floor for $__interval and
 * the scrape interval in $__rate_interval, so the report sees what Grafana shows.
 */
function datasourceIntervalSeconds(): number {
  const dir = join(repoRoot, "grafana", "provisioning", "datasources");
  for (const file of readdirSync(dir).filter((f) => /\.ya?ml$/.test(f))) {
    const doc = parse(readFileSync(join(dir, file), "utf8")) as {
      datasources?: { uid?: string; jsonData?: { timeInterval?: string } }[];
    } | null;
    const interval = doc?.datasources?.find((d) => d.uid === PROMETHEUS_UID)?.jsonData?.timeInterval;
    const seconds = /^(\d+)s$/.exec(interval ?? "")?.[1];
    if (seconds) return Number(seconds);
  }
  throw new Error(`no timeInterval like "5s" for datasource ${PROMETHEUS_UID} in ${dir}`);
}

/** Grafana's own variables for this window, the way Grafana derives them from the step. */
export function windowVariables(window: Window): { step: number; values: Record<string, string> } {
  const seconds = Math.max(1, Math.round((window.end.getTime() - window.start.getTime()) / 1000));
  const scrape = datasourceIntervalSeconds();
  const step = Math.max(scrape, Math.ceil(seconds / MAX_POINTS));
  // $__rate_interval = max($__interval + scrape interval, 4 x scrape interval).
  const rateInterval = Math.max(step + scrape, 4 * scrape);
  return {
    step,
    values: {
      __rate_interval: `${rateInterval}s`,
      __interval: `${step}s`,
      __interval_ms: String(step * 1000),
      __range: `${seconds}s`,
      __range_s: String(seconds),
      __range_ms: String(seconds * 1000),
    },
  };
}

/** `{{label}}` of Grafana's legend format; without one, the series' labels. */
function legend(format: string | undefined, metric: Record<string, string>): string {
  if (format) return format.replace(/\{\{\s*(\w+)\s*\}\}/g, (_, label: string) => metric[label] ?? "");
  const labels = Object.entries(metric).filter(([k]) => k !== "__name__");
  const name = metric.__name__ ?? "";
  return labels.length ? `${name}{${labels.map(([k, v]) => `${k}="${v}"`).join(", ")}}` : name || "value";
}

const finite = (v: number) => (Number.isFinite(v) ? v : null);

function toSeries(result: RangeSeries[], format: string | undefined): PanelSeries[] {
  return result.map((r) => ({ name: legend(format, r.metric), points: r.values.map(([t, v]) => [t, finite(v)]) }));
}

/** Consecutive samples (one step apart) of each series become one region. */
function regionsOf(result: RangeSeries[], step: number, format: string | undefined): Region[] {
  const regions: Region[] = [];
  for (const r of result) {
    const title = legend(format, r.metric);
    let open: Region | undefined;
    for (const [t] of r.values) {
      if (open && t - open.to <= step) open.to = t;
      else {
        open = { from: t, to: t, title };
        regions.push(open);
      }
    }
  }
  return regions;
}

/** Every panel of the dashboard (rows too, for the layout) with its queries' results over the window. */
export async function queryDashboard(
  prometheus: StartedPrometheusServer,
  dashboard: Dashboard,
  window: Window,
  variables: Readonly<Record<string, string>> = {},
): Promise<ReviewDashboard> {
  const { step, values } = windowVariables(window);
  const all = { ...values, ...variables };
  const range = { start: window.start, end: window.end, stepSeconds: step };
  const panels = (dashboard.panels ?? []).flatMap((p) => [p, ...(p.panels ?? [])]) as Panel[];
  const reviewed = await Promise.all(
    panels.map(async (panel): Promise<ReviewPanel> => {
      const defaults = panel.fieldConfig?.defaults;
      const out: ReviewPanel = {
        id: panel.id ?? 0,
        type: panel.type ?? "timeseries",
        title: panel.title ?? `#${panel.id}`,
        description: panel.description,
        gridPos: panel.gridPos ?? { x: 0, y: 0, w: 24, h: 8 },
        unit: defaults?.unit,
        min: defaults?.min,
        max: defaults?.max,
        thresholds: (defaults?.thresholds?.steps ?? []).flatMap((s) =>
          s.value === null ? [] : [{ value: s.value, color: s.color }],
        ),
        series: [],
        errors: [],
      };
      for (const target of panel.targets ?? []) {
        if (!target.expr?.trim()) continue;
        try {
          out.series.push(
            ...toSeries(await prometheus.queryRange(substitute(target.expr, all), range), target.legendFormat),
          );
        } catch (err) {
          out.errors.push(`query ${target.refId ?? "?"}: ${(err as Error).message}`);
        }
      }
      return out;
    }),
  );
  const regions: Region[] = [];
  for (const annotation of dashboard.annotations?.list ?? []) {
    if (annotation.builtIn || !annotation.expr) continue;
    // The annotations' own step (1 s, within Prometheus' 11 000 points) keeps a short fault one region.
    const annotationStep = Math.max(1, Math.ceil(Number(values.__range_s) / 10_000));
    const result = await prometheus.queryRange(substitute(annotation.expr, all), {
      ...range,
      stepSeconds: annotationStep,
    });
    regions.push(...regionsOf(result, annotationStep, annotation.titleFormat));
  }
  return { uid: dashboard.uid ?? "", title: dashboard.title ?? "dashboard", panels: reviewed, regions };
}

/** Series with at least one value: an all-NaN quantile over an idle window is no data. */
export const seriesWithData = (panel: ReviewPanel) => panel.series.filter((s) => s.points.some(([, v]) => v !== null));

/** Panels (not rows) that returned no value, or had a query refused, one line each naming the panel. */
export function panelsWithoutData(dashboards: ReviewDashboard[]): string[] {
  return dashboards.flatMap((d) =>
    d.panels
      .filter((p) => p.type !== "row" && (seriesWithData(p).length === 0 || p.errors.length > 0))
      .map(
        (p) =>
          `${d.title}: panel "${p.title}": ${p.errors.length ? p.errors.join("; ") : "no value over the run's window"}`,
      ),
  );
}
