// Scenario 3: latency percentiles under normal load, then tail latency under a burst. Each
// phase is its own scenario, so thresholds apply per scenario submetric. The burst's tail has
// the bound of the burst scenario (p99 < 2 s, answers shed or accepted): past capacity, it
// measures that queueing stays bounded; the report beside it shows the gateway's own p99.
//   k6 run -e TARGET=... [-e NORMAL_RATE=500 -e NORMAL_DURATION=1m -e BURST_RATE=3000 -e RAMP=10s -e HOLD=30s] load/scripts/gateway-latency.ts
import exec from "k6/execution";
import type { Options } from "k6/options";
import { durationMs } from "../lib/duration.ts";
import { SUMMARY_TREND_STATS, sendSignal, testTags, trafficFromEnv, warmupPlan } from "../lib/gateway-client.ts";

const traffic = trafficFromEnv();
const warm = warmupPlan(traffic);
const normalRate = Number(__ENV.NORMAL_RATE || 500);
const normalDuration = __ENV.NORMAL_DURATION || "1m";
const burstRate = Number(__ENV.BURST_RATE || 3000);
const ramp = __ENV.RAMP || "10s";
const hold = __ENV.HOLD || "30s";
const normalMs = durationMs(normalDuration);
if (normalMs === undefined) throw new Error(`NORMAL_DURATION: must be a duration like 1m (got: ${normalDuration})`);
// The burst continues the normal phase's request sequence: same fingerprint pool, no reset.
const burstOffset = Math.round((normalRate * normalMs) / 1000);

export const options: Options = {
  tags: testTags(),
  summaryTrendStats: SUMMARY_TREND_STATS,
  scenarios: {
    ...warm.scenarios,
    normal: {
      startTime: warm.startTime,
      executor: "constant-arrival-rate",
      exec: "normal",
      rate: normalRate,
      timeUnit: "1s",
      duration: normalDuration,
      preAllocatedVUs: 100,
      maxVUs: 500,
    },
    burst: {
      executor: "ramping-arrival-rate",
      exec: "burst",
      startTime: `${warm.startSeconds + normalMs / 1000}s`,
      startRate: normalRate,
      timeUnit: "1s",
      preAllocatedVUs: 300,
      maxVUs: 2000,
      stages: [
        { target: burstRate, duration: ramp },
        { target: burstRate, duration: hold },
        { target: normalRate, duration: ramp },
      ],
    },
  },
  thresholds: {
    "http_req_duration{scenario:normal}": ["med<20", "p(95)<50", "p(99)<100"],
    "http_req_failed{scenario:normal}": ["rate<0.001"],
    "dropped_iterations{scenario:normal}": ["count<1"],
    "http_req_duration{scenario:burst}": ["p(99)<2000"],
    "http_req_failed{scenario:burst}": ["rate<0.001"],
  },
};

export async function normal(): Promise<void> {
  await sendSignal(traffic, exec.scenario.iterationInTest, false);
}

export async function burst(): Promise<void> {
  await sendSignal(traffic, burstOffset + exec.scenario.iterationInTest, true);
}

export { handleSummary, warmup } from "../lib/gateway-client.ts";
