// What every dashboard is made of: the datasource, the two panel kinds with their queries and
// thresholds, and a board that numbers and lays out its panels row by row.
import * as common from "@grafana/grafana-foundation-sdk/common";
import {
  type AnnotationQuery,
  type Dashboard,
  DashboardBuilder,
  DashboardCursorSync,
  type DataSourceRef,
  RowBuilder,
  ThresholdsConfigBuilder,
  ThresholdsMode,
  type VariableModel,
} from "@grafana/grafana-foundation-sdk/dashboard";
import { DataqueryBuilder } from "@grafana/grafana-foundation-sdk/prometheus";
import * as stat from "@grafana/grafana-foundation-sdk/stat";
import * as timeseries from "@grafana/grafana-foundation-sdk/timeseries";

/** The uid of the provisioned Prometheus (grafana/provisioning/datasources/prometheus.yaml). */
export const PROMETHEUS_UID = "prometheus";
export const PROMETHEUS: DataSourceRef = { type: "prometheus", uid: PROMETHEUS_UID };

export interface Query {
  expr: string;
  legend?: string;
}

/** A recommended alerting threshold of the seed, in the panel's unit. */
export interface Limits {
  warning: number;
  critical: number;
}

export interface PanelSpec {
  title: string;
  description: string;
  unit: string;
  queries: Query[];
  /** Columns out of 24; the panels of one row add up to 24. */
  width: number;
  limits?: Limits;
  min?: number;
  max?: number;
}

type Panel = timeseries.PanelBuilder | stat.PanelBuilder;

function targets(queries: Query[]): DataqueryBuilder[] {
  return queries.map((q, i) => {
    const target = new DataqueryBuilder()
      .refId(String.fromCharCode(65 + i))
      .datasource(PROMETHEUS)
      .expr(q.expr);
    return q.legend === undefined ? target : target.legendFormat(q.legend);
  });
}

function thresholds(limits: Limits): ThresholdsConfigBuilder {
  return new ThresholdsConfigBuilder().mode(ThresholdsMode.Absolute).steps([
    { value: null, color: "green" },
    { value: limits.warning, color: "orange" },
    { value: limits.critical, color: "red" },
  ]);
}

/** What both panel kinds share: title, datasource, unit, size, queries and limits. */
function configure<P extends Panel>(panel: P, spec: PanelSpec, height: number): P {
  panel
    .title(spec.title)
    .description(spec.description)
    .datasource(PROMETHEUS)
    .unit(spec.unit)
    .span(spec.width)
    .height(height)
    .targets(targets(spec.queries));
  if (spec.limits) panel.thresholds(thresholds(spec.limits));
  if (spec.min !== undefined) panel.min(spec.min);
  if (spec.max !== undefined) panel.max(spec.max);
  return panel;
}

/** A time series panel; the seed's thresholds, if any, drawn as lines. */
export function graph(spec: PanelSpec): timeseries.PanelBuilder {
  const panel = configure(new timeseries.PanelBuilder(), spec, 8)
    .fillOpacity(10)
    .showPoints(common.VisibilityMode.Never)
    .legend(
      new common.VizLegendOptionsBuilder()
        .showLegend(true)
        .displayMode(common.LegendDisplayMode.List)
        .placement(common.LegendPlacement.Bottom),
    )
    .tooltip(
      new common.VizTooltipOptionsBuilder().mode(common.TooltipDisplayMode.Multi).sort(common.SortOrder.Descending),
    );
  if (spec.limits) {
    panel.thresholdsStyle(new common.GraphThresholdsStyleConfigBuilder().mode(common.GraphThresholdsStyleMode.Line));
  }
  return panel;
}

/**
 * A single figure with its trend: the last value in range, or its peak; coloured by the seed's
 * thresholds, if any.
 */
export function figure(spec: PanelSpec, calc: "lastNotNull" | "max" = "lastNotNull"): stat.PanelBuilder {
  return configure(new stat.PanelBuilder(), spec, 4)
    .graphMode(common.BigValueGraphMode.Area)
    .colorMode(spec.limits ? common.BigValueColorMode.Background : common.BigValueColorMode.None)
    .reduceOptions(new common.ReduceDataOptionsBuilder().calcs([calc]).values(false));
}

/**
 * `expr`, or 0 while `reference` has data: a counter with labels has no series until its first
 * increment, and "none yet" reads better as 0 than as "No data" (unlike `vector(0)`, which would
 * also draw 0 for a run that never happened). Both sides must carry the same labels (none).
 */
export const orZero = (expr: string, reference: string) => `(${expr} or 0 * ${reference})`;

/** The gateway's signal endpoints (`/api/v1/signals/prometheus`, `/api/v1/signals/kubernetes-event`). */
export const SIGNAL_ROUTES = 'route=~"/api/v1/signals/.*"';

/** Per-second rate of a counter, summed `by` the given labels. */
export const rate = (series: string, by = "") => `${by ? `sum by (${by}) ` : "sum"}(rate(${series}[$__rate_interval]))`;

/** Quantile `q` of a Prometheus histogram, kept apart `by` the given labels. */
export const quantile = (q: number, histogram: string, selector = "", by = "") =>
  `histogram_quantile(${q}, sum by (le${by ? `, ${by}` : ""}) (rate(${histogram}_bucket${selector ? `{${selector}}` : ""}[$__rate_interval])))`;

/** Quantile `q` of the gateway's own answer times on the signal endpoints. */
export const gatewaySignalQuantile = (q: number) => quantile(q, "gateway_http_request_duration_seconds", SIGNAL_ROUTES);

/** A dashboard in rows: every panel numbered, rows stacked under each other. */
export class Board {
  private readonly builder: DashboardBuilder;
  private nextId = 1;

  constructor(uid: string, title: string, description: string) {
    this.builder = new DashboardBuilder(title)
      .uid(uid)
      .description(description)
      .tags(["kubernaut", "gateway"])
      // Provisioned from files: edits in the UI would be lost at the next start.
      .readonly()
      .time({ from: "now-30m", to: "now" })
      .refresh("10s")
      .tooltip(DashboardCursorSync.Crosshair);
  }

  variable(variable: { build(): VariableModel }): this {
    this.builder.withVariable(variable);
    return this;
  }

  annotation(annotation: { build(): AnnotationQuery }): this {
    this.builder.annotation(annotation);
    return this;
  }

  row(title: string, ...panels: Panel[]): this {
    this.builder.withRow(new RowBuilder(title).id(this.nextId++));
    for (const panel of panels) this.builder.withPanel(panel.id(this.nextId++));
    return this;
  }

  build(): Dashboard {
    return this.builder.build();
  }
}
