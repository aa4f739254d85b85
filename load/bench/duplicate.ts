// k6 script of the duplicate-path benchmark: the SAME alert at a constant arrival rate, so after
// the first request every answer is a duplicate (202). Runs on k6 and the embedded runner.
// With NEW_FINGERPRINTS=true every request is a new alert instead (the creation path, 201).
//   -e TARGET=http://127.0.0.1:8080 -e PATH=/api/v1/signals/prometheus -e RATE=500 -e DURATION=15s -e RESULTS_DIR=dir
// setup()/teardown() log the markers duplicate-path.ts uses to read CPU counters at the edges of the load.
import { check } from "k6";
import http from "k6/http";
import type { Options } from "k6/options";
import { BENCH_ALERT_BODY } from "./alert.ts";

// Markers read by duplicate-path.ts (keep the two in step).
const LOAD_STARTING = "bench: load starting";
const LOAD_FINISHED = "bench: load finished";

const rate = Number(__ENV.RATE || 500);
const newFingerprints = __ENV.NEW_FINGERPRINTS === "true";
if (!["", "true", "false", undefined].includes(__ENV.NEW_FINGERPRINTS))
  throw new Error(`NEW_FINGERPRINTS: must be true or false (got: ${__ENV.NEW_FINGERPRINTS})`);
if (!Number.isInteger(rate) || rate <= 0) throw new Error(`RATE: must be a positive whole number (got: ${__ENV.RATE})`);

export const options: Options = {
  summaryTrendStats: ["avg", "min", "med", "max", "p(90)", "p(95)", "p(99)", "count"],
  scenarios: {
    duplicate: {
      executor: "constant-arrival-rate",
      rate,
      timeUnit: "1s",
      duration: __ENV.DURATION || "15s",
      preAllocatedVUs: 100,
      maxVUs: 2000,
      gracefulStop: "5s",
    },
  },
};

/** The request URL; PATH must be a URL path, not the shell's PATH that __ENV also carries. */
function url(): string {
  const base = (__ENV.TARGET || "").replace(/\/+$/, "");
  if (!/^https?:\/\/\S+$/.test(base))
    throw new Error(`TARGET: set a base URL, e.g. -e TARGET=http://127.0.0.1:8080 (got: ${base})`);
  const path = __ENV.PATH || "";
  if (!/^\/[^:\s]*$/.test(path))
    throw new Error(`PATH: set the request path, e.g. -e PATH=/api/v1/signals/prometheus (got: ${path})`);
  return `${base}${path}`;
}

const TARGET_URL = url();
const PARAMS = {
  headers: { "Content-Type": "application/json" },
  timeout: "5s",
  responseCallback: http.expectedStatuses(newFingerprints ? 201 : 202),
};

export function setup(): void {
  console.log(LOAD_STARTING);
}

export default async function (): Promise<void> {
  // The alert's name is part of its fingerprint: one per VU and iteration is a first sighting,
  // and no two share a name, so no storm folds them together.
  const body = newFingerprints
    ? BENCH_ALERT_BODY.replaceAll("BenchDuplicate", `BenchCreate${__VU}x${__ITER}`)
    : BENCH_ALERT_BODY;
  const res = await http.asyncRequest("POST", TARGET_URL, body, PARAMS);
  // Named checks, so the summary says what the other answers were.
  check(res, {
    [newFingerprints ? "answered 201 (created)" : "answered 202 (duplicate)"]: (r) =>
      r.status === (newFingerprints ? 201 : 202),
    "not shed (503)": (r) => r.status !== 503,
    "answered at all": (r) => r.status !== 0,
  });
}

export function teardown(): void {
  console.log(LOAD_FINISHED);
}

export function handleSummary(data: unknown): Record<string, string> {
  return { [`${(__ENV.RESULTS_DIR || ".").replace(/\/+$/, "")}/summary.json`]: JSON.stringify(data, null, 2) };
}
