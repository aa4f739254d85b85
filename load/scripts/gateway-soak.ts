// Scenario 4: soak at a constant rate. SOAK_MODE=ci (the default) runs DURATION (default 2m); SOAK_MODE=24h
// runs a day. Latency and errors must not drift; the harness reads memory, CPU and Redis pool
// use of the gateway from Prometheus for the same testid.
//   k6 run -e TARGET=... [-e RATE=300] [-e DURATION=2m | -e SOAK_MODE=24h] load/scripts/gateway-soak.ts
import exec from "k6/execution";
import type { Options } from "k6/options";
import { SUMMARY_TREND_STATS, sendSignal, testTags, trafficFromEnv, warmupPlan } from "../lib/gateway-client.ts";

const traffic = trafficFromEnv();
const warm = warmupPlan(traffic);
const mode = __ENV.SOAK_MODE || "ci";
if (mode !== "ci" && mode !== "24h") throw new Error(`SOAK_MODE: must be ci or 24h (got: ${mode})`);

export const options: Options = {
  tags: { ...testTags(), soak_mode: mode },
  summaryTrendStats: SUMMARY_TREND_STATS,
  scenarios: {
    ...warm.scenarios,
    soak: {
      startTime: warm.startTime,
      executor: "constant-arrival-rate",
      rate: Number(__ENV.RATE || 300),
      timeUnit: "1s",
      duration: mode === "24h" ? "24h" : __ENV.DURATION || "2m",
      preAllocatedVUs: 100,
      maxVUs: 500,
    },
  },
  thresholds: {
    "http_req_duration{scenario:soak}": ["p(99)<100"],
    "http_req_failed{scenario:soak}": ["rate<0.001"],
    "dropped_iterations{scenario:soak}": ["count<1"],
    checks: ["rate>0.999"],
  },
};

export default async function (): Promise<void> {
  await sendSignal(traffic, exec.scenario.iterationInTest, false);
}

export { handleSummary, warmup } from "../lib/gateway-client.ts";
