// What every gateway load script shares: the target, the traffic model, sending one signal with
// checks on the gateway's answer, and the handleSummary outputs. Runs on k6 and the embedded runner.
import { check } from "k6";
import http, { type RefinedResponse, type ResponseType } from "k6/http";
import { type SummaryData, textSummary } from "./k6-summary.ts";
import { type SignalRequest, signalRequest, type TrafficConfig, trafficConfigFromEnv } from "./traffic.ts";

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

/** The traffic model configured from __ENV; timestamps based on the current minute, shared by all VUs. */
export function trafficFromEnv(): TrafficConfig {
  return trafficConfigFromEnv(__ENV, Math.floor(Date.now() / 60_000) * 60_000);
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

function hasSignalFields(entry: unknown): boolean {
  const e = entry as { fingerprint?: unknown; status?: unknown } | undefined;
  return typeof e?.fingerprint === "string" && FINGERPRINT.test(e.fingerprint) && typeof e.status === "string";
}

/** 201/202 carry one result; 207 carries one result per alert in `results`. */
export function bodyIsValid(res: GatewayResponse, req: SignalRequest): boolean {
  const body = json(res);
  if (res.status === 207) {
    const results = body?.results;
    return Array.isArray(results) && results.length === req.meta.fingerprints.length && results.every(hasSignalFields);
  }
  return hasSignalFields(body);
}

export const isBackpressure = (status: number) => status === 429 || status === 503;

/**
 * Posts iteration `iteration`'s signal and checks the answer. With `allowBackpressure`, 429/503
 * count as expected answers (the gateway shedding load is correct behaviour under a burst).
 */
export async function sendSignal(
  traffic: TrafficConfig,
  iteration: number,
  allowBackpressure: boolean,
): Promise<{ res: GatewayResponse; req: SignalRequest }> {
  const req = signalRequest(traffic, iteration);
  const res = await http.asyncRequest("POST", `${target()}${req.path}`, req.body, {
    headers: { "Content-Type": "application/json" },
    tags: { endpoint: req.kind },
    timeout: "10s",
    responseCallback: allowBackpressure ? ACCEPTED_OR_BACKPRESSURE : ACCEPTED,
  });
  const accepted = res.status === 201 || res.status === 202 || res.status === 207;
  check(res, {
    "answered 201/202/207": () => accepted || (allowBackpressure && isBackpressure(res.status)),
    "answer has fingerprint and status": () => !accepted || bodyIsValid(res, req),
  });
  return { res, req };
}

/** handleSummary outputs: the text summary on stdout and summary.json in RESULTS_DIR. */
export function summaryOutputs(data: SummaryData): Record<string, string> {
  const dir = (__ENV.RESULTS_DIR || ".").replace(/\/+$/, "");
  return { stdout: textSummary(data), [`${dir}/summary.json`]: JSON.stringify(data, null, 2) };
}
