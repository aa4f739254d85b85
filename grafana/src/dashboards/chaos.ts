// A chaos run: the fault windows over the gateway's rates, errors and latency. The windows come
// from chaos_fault_active{experiment,fault}, a gauge the chaos runner holds at 1 while a fault
// is injected.
import { type AnnotationQuery, AnnotationQueryBuilder } from "@grafana/grafana-foundation-sdk/dashboard";
import * as units from "@grafana/grafana-foundation-sdk/units";
import { gatewayPanels } from "./gateway.js";
import { Board, gatewaySignalQuantile, graph, orZero, PROMETHEUS, quantile, rate, SIGNAL_ROUTES } from "./shared.js";

const SIGNALS = `gateway_http_requests_total{${SIGNAL_ROUTES}}`;
const NON_2XX = `gateway_http_requests_total{${SIGNAL_ROUTES},status!~"2.."}`;

/** Each run of consecutive samples at 1 becomes one shaded region, titled by its fault. */
const faultWindows = {
  build: (): AnnotationQuery => ({
    ...new AnnotationQueryBuilder()
      .name("Fault windows")
      .datasource(PROMETHEUS)
      .enable(true)
      .iconColor("red")
      .expr("chaos_fault_active == 1")
      .build(),
    // Options of Grafana's Prometheus annotations the SDK has no setters for. A step of 1 s keeps
    // the few seconds a fault may last one region instead of none.
    ...{ step: "1s", titleFormat: "{{fault}}", textFormat: "{{experiment}}", tagKeys: "experiment,fault" },
  }),
};

export function chaosDashboard() {
  return new Board(
    "kubernaut-chaos",
    "Kubernaut chaos",
    "Fault windows (annotations from chaos_fault_active) over the gateway's request rates, errors and latency.",
  )
    .annotation(faultWindows)
    .row(
      "Faults",
      graph({
        title: "Faults active",
        description: "chaos_fault_active: 1 while the chaos runner injects the fault.",
        unit: units.BoolOnOff,
        min: 0,
        max: 1,
        width: 24,
        queries: [{ expr: "max by (experiment, fault) (chaos_fault_active)", legend: "{{experiment}} {{fault}}" }],
      }),
    )
    .row(
      "Signals",
      graph({
        title: "Signal answers by status",
        description: "The gateway's answers on its signal endpoints.",
        unit: units.RequestsPerSecond,
        width: 12,
        queries: [{ expr: rate(SIGNALS, "status"), legend: "{{status}}" }],
      }),
      graph({
        title: "Non-2xx share of signal answers",
        description: "Errors and refusals (any status but 2xx) as a share of all signal answers, by status.",
        unit: units.PercentUnit,
        min: 0,
        width: 12,
        queries: [
          { expr: `${rate(NON_2XX, "status")} / ignoring (status) group_left ${rate(SIGNALS)}`, legend: "{{status}}" },
          { expr: `${orZero(rate(NON_2XX), rate(SIGNALS))} / ${rate(SIGNALS)}`, legend: "all non-2xx" },
        ],
      }),
    )
    .row(
      "Latency",
      graph({
        title: "Signal answer time",
        description: "The gateway's own p50 and p99 on its signal endpoints (gateway_http_request_duration_seconds).",
        unit: units.Seconds,
        width: 12,
        queries: [
          { expr: gatewaySignalQuantile(0.5), legend: "p50" },
          { expr: gatewaySignalQuantile(0.99), legend: "p99" },
        ],
      }),
      graph({
        title: "Processing p99 by outcome",
        description: "gateway_processing_duration_seconds: created, duplicate, storm-aggregated... and failed.",
        unit: units.Seconds,
        width: 12,
        queries: [
          { expr: quantile(0.99, "gateway_processing_duration_seconds", "", "outcome"), legend: "{{outcome}}" },
        ],
      }),
    )
    .row("Dependencies", gatewayPanels.availability(8), gatewayPanels.refusals(8), gatewayPanels.auditJournal(8))
    .build();
}
