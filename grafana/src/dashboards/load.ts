// A load run as k6's Prometheus remote-write dashboard shows it, over the series the runner
// writes (load/runner/engine/remote-write.ts): counters k6_<name>_total, gauges k6_<name>, rates
// k6_<name>_rate, trends one gauge per stat. Every value is cumulative since the run's start and
// kept apart per tag set (testid, scenario, status, method, name, expected_response...).
import { QueryVariableBuilder, VariableRefresh } from "@grafana/grafana-foundation-sdk/dashboard";
import * as units from "@grafana/grafana-foundation-sdk/units";
import { Board, figure, gatewaySignalQuantile, graph, orZero, PROMETHEUS, rate, SIGNAL_ROUTES } from "./shared.js";

const RUN = 'testid="$testid"';
const REQS = `k6_http_reqs_total{${RUN}}`;
const requestRate = rate(REQS);

/** A trend stat of http_req_duration (p95, p99): the slowest tag set, since the run's start. */
const duration = (stat: "p95" | "p99", by = "") =>
  `${by ? `max by (${by}) ` : "max"}(k6_http_req_duration_${stat}{${RUN}})`;

export function loadDashboard() {
  return new Board(
    "kubernaut-load",
    "Kubernaut load test",
    "One load run (testid) as k6 reports it, beside the gateway's own view of the same time range.",
  )
    .variable(
      new QueryVariableBuilder("testid")
        .label("Test run")
        .description("The run's id (results/load/<run-id>): every sample of the run carries it as testid.")
        .datasource(PROMETHEUS)
        .query("label_values(k6_http_reqs_total, testid)")
        .refresh(VariableRefresh.OnTimeRangeChanged),
    )
    .row(
      "Overview",
      figure({
        title: "HTTP requests",
        description: "Requests sent so far (k6_http_reqs_total).",
        unit: units.Short,
        width: 4,
        queries: [{ expr: `sum(${REQS})` }],
      }),
      figure({
        title: "HTTP request failed",
        description: "Share of requests whose answer the script did not expect (http_req_failed), since the start.",
        unit: units.PercentUnit,
        width: 4,
        // Both series carry the same tags, so the product is each tag set's count of failures.
        queries: [{ expr: `sum(k6_http_req_failed_rate{${RUN}} * ${REQS}) / sum(${REQS})` }],
      }),
      figure(
        {
          title: "Peak request rate",
          description: "The highest request rate in range.",
          unit: units.RequestsPerSecond,
          width: 4,
          queries: [{ expr: requestRate }],
        },
        "max",
      ),
      figure({
        title: "http_req_duration p95",
        description: "Since the start, of the slowest tag set (status, scenario...).",
        unit: units.Seconds,
        width: 4,
        queries: [{ expr: duration("p95") }],
      }),
      figure({
        title: "http_req_duration p99",
        description: "Since the start, of the slowest tag set (status, scenario...).",
        unit: units.Seconds,
        width: 4,
        queries: [{ expr: duration("p99") }],
      }),
      figure({
        title: "Dropped iterations",
        description: "Iterations the arrival-rate executor could not start in time (no VU free).",
        unit: units.Short,
        width: 4,
        queries: [{ expr: orZero(`sum(k6_dropped_iterations_total{${RUN}})`, `sum(${REQS})`) }],
      }),
    )
    .row(
      "HTTP",
      graph({
        title: "Request rate",
        description: "Requests per second by answer status.",
        unit: units.RequestsPerSecond,
        width: 12,
        queries: [
          { expr: rate(REQS, "status"), legend: "{{status}}" },
          { expr: requestRate, legend: "all" },
        ],
      }),
      graph({
        title: "http_req_duration p95 and p99",
        description: "Per scenario, of its slowest tag set, since the start (k6's trend stats are cumulative).",
        unit: units.Seconds,
        width: 12,
        queries: [
          { expr: duration("p95", "scenario"), legend: "p95 {{scenario}}" },
          { expr: duration("p99", "scenario"), legend: "p99 {{scenario}}" },
        ],
      }),
    )
    .row(
      "Generator",
      graph({
        title: "Failed request rate",
        description: "Share of requests per interval whose answer the script did not expect (expected_response false).",
        unit: units.PercentUnit,
        min: 0,
        width: 8,
        queries: [
          {
            expr: `${orZero(rate(`k6_http_reqs_total{${RUN},expected_response="false"}`), requestRate)} / ${requestRate}`,
            legend: "failed",
          },
        ],
      }),
      graph({
        title: "Virtual users",
        description: "VUs busy with an iteration, and VUs allocated.",
        unit: units.Short,
        width: 8,
        queries: [
          { expr: `sum(k6_vus{${RUN}})`, legend: "active" },
          { expr: `sum(k6_vus_max{${RUN}})`, legend: "allocated" },
        ],
      }),
      graph({
        title: "Iterations and dropped iterations",
        description: "Iterations started per second, and those dropped because no VU was free.",
        unit: units.CountsPerSecond,
        width: 8,
        queries: [
          { expr: rate(`k6_iterations_total{${RUN}}`), legend: "iterations" },
          {
            expr: orZero(rate(`k6_dropped_iterations_total{${RUN}}`), rate(`k6_iterations_total{${RUN}}`)),
            legend: "dropped",
          },
        ],
      }),
    )
    .row(
      "Checks and data",
      graph({
        title: "Checks",
        description: "Share of each check that passed, since the start (the worst tag set).",
        unit: units.PercentUnit,
        min: 0,
        max: 1,
        width: 8,
        queries: [{ expr: `min by (check) (k6_checks_rate{${RUN}})`, legend: "{{check}}" }],
      }),
      graph({
        title: "Data sent and received",
        description: "Bytes per second on the wire, request and answer.",
        unit: units.BytesPerSecondSI,
        width: 16,
        queries: [
          { expr: rate(`k6_data_sent_total{${RUN}}`), legend: "sent" },
          { expr: rate(`k6_data_received_total{${RUN}}`), legend: "received" },
        ],
      }),
    )
    .row(
      "Generator and gateway side by side",
      graph({
        title: "Request rate: generator and gateway",
        description:
          "What the generator sent and what the gateway answered on its signal endpoints (the gateway's series carry no testid: choose the run's time range).",
        unit: units.RequestsPerSecond,
        width: 8,
        queries: [
          { expr: requestRate, legend: "generator" },
          { expr: rate(`gateway_http_requests_total{${SIGNAL_ROUTES}}`), legend: "gateway" },
        ],
      }),
      ...(["p95", "p99"] as const).map((stat) =>
        graph({
          title: `Latency ${stat}: generator and gateway`,
          description:
            "The generator's http_req_duration since the start (slowest tag set) and the gateway's own answer time on the signal endpoints per interval: the difference is time spent outside the gateway (network, scheduling on a shared machine).",
          unit: units.Seconds,
          width: 8,
          queries: [
            { expr: duration(stat), legend: "generator (since start)" },
            { expr: gatewaySignalQuantile(stat === "p95" ? 0.95 : 0.99), legend: "gateway" },
          ],
        }),
      ),
    )
    .build();
}
