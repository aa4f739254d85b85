// Scenario 1: 1000 alerts/s sustained (open model). p99 < 100 ms, duplicates (202) p95 < 50 ms,
// errors < 0.1 %, and the generator never had to drop an iteration.
//   k6 run -e TARGET=http://127.0.0.1:8080 -e DURATION=2m load/scripts/gateway-1000rps.ts
import exec from "k6/execution";
import type { Options } from "k6/options";
import { SUMMARY_TREND_STATS, sendSignal, testTags, trafficFromEnv, warmupPlan } from "../lib/gateway-client.ts";

const traffic = trafficFromEnv();
const warm = warmupPlan(traffic);

export const options: Options = {
  tags: testTags(),
  summaryTrendStats: SUMMARY_TREND_STATS,
  scenarios: {
    ...warm.scenarios,
    sustained: {
      startTime: warm.startTime,
      executor: "constant-arrival-rate",
      rate: Number(__ENV.RATE || 1000),
      timeUnit: "1s",
      duration: __ENV.DURATION || "2m",
      preAllocatedVUs: 200,
      maxVUs: 1000,
    },
  },
  thresholds: {
    "http_req_duration{scenario:sustained}": ["p(99)<100"],
    "http_req_duration{scenario:sustained,status:202}": ["p(95)<50"],
    "http_req_failed{scenario:sustained}": ["rate<0.001"],
    "dropped_iterations{scenario:sustained}": ["count<1"],
  },
};

export default async function (): Promise<void> {
  await sendSignal(traffic, exec.scenario.iterationInTest, false);
}

export { handleSummary, warmup } from "../lib/gateway-client.ts";
