// What every gateway load script shares: the target, the traffic model, sending one signal with
// checks on the gateway's answer, and the handleSummary outputs. Runs on k6 and the embedded runner.
import { check } from "k6";
import exec from "k6/execution";
import http, { type RefinedResponse, type ResponseType } from "k6/http";
import { Counter } from "k6/metrics";
import type { Scenario } from "k6/options";
import { type SummaryData, textSummary } from "./k6-summary.ts";
import {
  type SignalRequest,
  signalRequest,
  type TrafficConfig,
  trafficConfigFromEnv,
  warmupRequest,
} from "./traffic.ts";

export type GatewayResponse = RefinedResponse<ResponseType | undefined>;

/** Trend stats in summary.json (k6's default lacks p(99) and count). */
export const SUMMARY_TREND_STATS = ["avg", "min", "med", "max", "p(90)", "p(95)", "p(99)", "count"];

// Which answers count as successful (http_req_failed, expected_response tag).
const ACCEPTED = http.expectedStatuses(201, 202, 207);
const ACCEPTED_OR_BACKPRESSURE = http.expectedStatuses(201, 202, 207, 429, 503);

/** The gateway's base URL (TARGET), without a trailing slash. */
export function target(): string {
  const base = __ENV.TARGET;
  if (!base) throw new Error("TARGET: set the gateway base URL, e.g. -e TARGET=http://127.0.0.1:8080");
  return base.replace(/\/+$/, "");
}

/** Tags every sample with the run's testid (TESTID), the label the dashboards select on. */
export function testTags(): { testid: string } {
  return { testid: __ENV.TESTID || "local" };
}

let traffic: TrafficConfig | undefined;

/** The traffic model configured from __ENV (one per VU); timestamps based on the minute it was first asked for. */
export function trafficFromEnv(): TrafficConfig {
  traffic ??= trafficConfigFromEnv(__ENV, Math.floor(Date.now() / 60_000) * 60_000);
  return traffic;
}

/** A parsed JSON body, or undefined when the body is not JSON. */
function json(res: GatewayResponse): Record<string, unknown> | undefined {
  try {
    const value = JSON.parse(String(res.body));
    return typeof value === "object" && value !== null ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

const FINGERPRINT = /^[a-f0-9]{64}$/;

interface SignalResult {
  fingerprint?: unknown;
  status?: unknown;
}

function hasSignalFields(entry: SignalResult | undefined): boolean {
  return (
    typeof entry?.fingerprint === "string" && FINGERPRINT.test(entry.fingerprint) && typeof entry.status === "string"
  );
}

/** The per-alert results of an accepted answer: 201/202 carry one, 207 one per alert in `results`. */
function signalResults(res: GatewayResponse): SignalResult[] | undefined {
  const body = json(res);
  if (res.status !== 207) return body ? [body] : undefined;
  return Array.isArray(body?.results) ? (body.results as SignalResult[]) : undefined;
}

// What the gateway said it did with each signal, for reconciling against Redis and Kubernetes.
const outcomes: Record<string, Counter> = {
  created: new Counter("signals_created"),
  duplicate: new Counter("signals_duplicate"),
  "storm-aggregated": new Counter("signals_storm_aggregated"),
};
// Signals whose request got no answer at all (timeout, connection error): the gateway may
// have processed them, so the accounting allows the real state to be ahead by this much.
const unanswered = new Counter("signals_unanswered");

export const isBackpressure = (status: number) => status === 429 || status === 503;

/**
 * Posts iteration `iteration`'s signal and checks the answer. With `allowBackpressure`, 429/503
 * count as expected answers (the gateway shedding load is correct behaviour under a burst).
 */
export function sendSignal(
  traffic: TrafficConfig,
  iteration: number,
  allowBackpressure: boolean,
): Promise<{ res: GatewayResponse; req: SignalRequest }> {
  return send(signalRequest(traffic, iteration), allowBackpressure);
}

/** The warm-up scenario's exec function: the first sighting of one pool member. Scripts re-export it. */
export async function warmup(): Promise<void> {
  await send(warmupRequest(trafficFromEnv(), exec.scenario.iterationInTest), true);
}

// Bearer token for a gateway with auth on (the cluster manifests): GATEWAY_TOKEN.
const AUTH: Record<string, string> = __ENV.GATEWAY_TOKEN ? { Authorization: `Bearer ${__ENV.GATEWAY_TOKEN}` } : {};

async function send(
  req: SignalRequest,
  allowBackpressure: boolean,
): Promise<{ res: GatewayResponse; req: SignalRequest }> {
  const res = await http.asyncRequest("POST", `${target()}${req.path}`, req.body, {
    headers: { "Content-Type": "application/json", ...AUTH },
    tags: { endpoint: req.kind },
    timeout: "10s",
    responseCallback: allowBackpressure ? ACCEPTED_OR_BACKPRESSURE : ACCEPTED,
  });
  const accepted = res.status === 201 || res.status === 202 || res.status === 207;
  const results = accepted ? signalResults(res) : [];
  check(res, {
    "answered 201/202/207": () => accepted || (allowBackpressure && isBackpressure(res.status)),
    "answer has fingerprint and status": () =>
      results !== undefined &&
      results.length === (accepted ? req.meta.fingerprints.length : 0) &&
      results.every(hasSignalFields),
  });
  for (const r of results ?? []) outcomes[String(r.status)]?.add(1, { endpoint: req.kind });
  if (res.status === 0) unanswered.add(req.meta.fingerprints.length, { endpoint: req.kind });
  return { res, req };
}

/**
 * A warm-up scenario that sends every pool member once (WARMUP_RATE per second,
 * default 100; 0 disables it), so the measured scenarios, which start at
 * `startTime`, see the model's steady state (mostly duplicates) rather than a
 * cold start in which every signal creates a RemediationRequest. Thresholds
 * select the measured scenario by tag, so the warm-up never counts.
 */
export function warmupPlan(traffic: TrafficConfig): {
  scenarios: Record<string, Scenario>;
  startTime: string;
  startSeconds: number;
} {
  const rate = Number(__ENV.WARMUP_RATE ?? 100);
  if (!Number.isFinite(rate) || rate < 0)
    throw new Error(`WARMUP_RATE must be a number >= 0 (got: ${__ENV.WARMUP_RATE})`);
  if (rate === 0) return { scenarios: {}, startTime: "0s", startSeconds: 0 };
  const seconds = Math.ceil(traffic.poolSize / rate);
  return {
    scenarios: {
      warmup: {
        executor: "constant-arrival-rate",
        rate,
        timeUnit: "1s",
        duration: `${seconds}s`,
        preAllocatedVUs: 50,
        maxVUs: 500,
        exec: "warmup",
      },
    },
    // A few seconds for the last creations to settle before measuring.
    startTime: `${seconds + 5}s`,
    startSeconds: seconds + 5,
  };
}

/** k6's handleSummary for every script (re-exported): the text summary on stdout and summary.json in RESULTS_DIR. */
export function handleSummary(data: SummaryData): Record<string, string> {
  const dir = (__ENV.RESULTS_DIR || ".").replace(/\/+$/, "");
  return { stdout: textSummary(data), [`${dir}/summary.json`]: JSON.stringify(data, null, 2) };
}
