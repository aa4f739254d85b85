// k6/http for the embedded runner: asyncRequest on undici, synchronous request via a worker thread,
// built-in HTTP metrics with k6's tags, expectedStatuses/responseCallback.
import { parseDuration } from "../engine/duration.js";
import { type HttpRequestSpec, type HttpResult, httpClient, type ResponseType } from "../engine/http-client.js";
import { tagsKey } from "../engine/metrics.js";
import { builtin, currentContext, type ExecContext, sampleTags } from "../engine/runtime.js";
import { performSync } from "../engine/sync-http.js";

type StatusRule = number | { min: number; max: number };

/** What http.expectedStatuses() returns; decides http_req_failed and the expected_response tag. */
export class ExpectedStatuses {
  constructor(private readonly rules: StatusRule[]) {}
  matches(status: number): boolean {
    return this.rules.some((r) => (typeof r === "number" ? r === status : status >= r.min && status <= r.max));
  }
}

export function expectedStatuses(...rules: StatusRule[]): ExpectedStatuses {
  rules.forEach((rule, i) => {
    const ok =
      typeof rule === "number"
        ? Number.isInteger(rule)
        : typeof rule === "object" && rule !== null && Number.isInteger(rule.min) && Number.isInteger(rule.max);
    if (!ok)
      throw new TypeError(
        `expectedStatuses: argument ${i} must be a status code or {min, max} (got: ${JSON.stringify(rule)})`,
      );
  });
  return new ExpectedStatuses(rules);
}

let defaultCallback: ExpectedStatuses | null = expectedStatuses({ min: 200, max: 399 });

export function setResponseCallback(callback: ExpectedStatuses | null): void {
  if (callback !== null && !(callback instanceof ExpectedStatuses)) {
    throw new TypeError("setResponseCallback: pass the result of http.expectedStatuses() or null");
  }
  defaultCallback = callback;
}

export interface Params {
  headers?: Record<string, string>;
  tags?: Record<string, string>;
  timeout?: string | number;
  responseType?: ResponseType;
  responseCallback?: ExpectedStatuses | null;
}

type Body = string | ArrayBuffer | Uint8Array | Record<string, string> | null | undefined;

export class Response {
  readonly status: number;
  readonly status_text: string;
  readonly proto: string;
  readonly headers: Record<string, string>;
  readonly body: string | ArrayBuffer | null;
  readonly error: string;
  readonly error_code: number;
  readonly url: string;
  readonly remote_ip = "";
  readonly remote_port = 0;
  readonly timings: {
    duration: number;
    waiting: number;
    receiving: number;
    sending: number;
    blocked: number;
    connecting: number;
    tls_handshaking: number;
  };
  readonly request: { method: string; url: string; headers: Record<string, string>; body: string };

  constructor(spec: HttpRequestSpec, result: HttpResult) {
    this.status = result.status;
    this.status_text = result.statusText;
    this.proto = result.proto;
    this.headers = result.headers;
    this.body = result.body;
    this.error = result.error;
    this.error_code = result.errorCode;
    this.url = spec.url;
    this.timings = {
      duration: result.endedMs - result.startedMs,
      waiting: result.waitingMs,
      receiving: result.receivingMs,
      sending: 0,
      blocked: 0,
      connecting: 0,
      tls_handshaking: 0,
    };
    const body =
      spec.body === undefined ? "" : typeof spec.body === "string" ? spec.body : Buffer.from(spec.body).toString();
    this.request = { method: spec.method, url: spec.url, headers: spec.headers, body };
  }

  /** The body parsed as JSON; `selector` is a dotted path ("results.0.fingerprint"). */
  json(selector?: string): unknown {
    if (typeof this.body !== "string")
      throw new Error(`response body of ${this.url} is not text (responseType or error)`);
    let value: unknown = JSON.parse(this.body);
    for (const part of selector ? selector.split(".") : []) {
      value = value === null || typeof value !== "object" ? undefined : (value as Record<string, unknown>)[part];
    }
    return value;
  }
}

interface Prepared {
  spec: HttpRequestSpec;
  params: Params;
}

function prepare(method: string, url: unknown, body: Body, params: Params | null | undefined): Prepared {
  const p = params ?? {};
  const headers: Record<string, string> = { "User-Agent": "k6-embedded-runner", ...p.headers };
  let payload: string | Uint8Array | undefined;
  if (typeof body === "string") payload = body;
  else if (body instanceof ArrayBuffer) payload = new Uint8Array(body);
  else if (body instanceof Uint8Array) payload = body;
  else if (body !== null && body !== undefined) {
    payload = new URLSearchParams(body).toString();
    if (!Object.keys(headers).some((h) => h.toLowerCase() === "content-type")) {
      headers["Content-Type"] = "application/x-www-form-urlencoded";
    }
  }
  return {
    spec: {
      method: method.toUpperCase(),
      url: String(url),
      headers,
      body: payload,
      timeoutMs: p.timeout === undefined ? 60_000 : parseDuration(p.timeout, "params.timeout"),
      responseType: p.responseType ?? "text",
    },
    params: p,
  };
}

/** Emits the built-in HTTP metrics with k6's system tags, unless the scenario was already stopped. */
function record(ctx: ExecContext | undefined, { spec, params }: Prepared, result: HttpResult): Response {
  const response = new Response(spec, result);
  const iteration = ctx?.iteration;
  if (iteration?.scenario.stopped) return response;
  const callback = params.responseCallback === undefined ? defaultCallback : params.responseCallback;
  const expected = callback === null ? undefined : callback.matches(result.status);
  const tags = sampleTags(ctx, {
    proto: result.proto,
    method: spec.method,
    url: spec.url,
    name: spec.url,
    status: String(result.status),
    ...(expected === undefined ? {} : { expected_response: String(expected) }),
    ...(result.errorCode ? { error_code: String(result.errorCode) } : {}),
    ...params.tags,
  });
  const key = tagsKey(tags);
  builtin.httpReqs.add(1, tags, key);
  builtin.httpReqDuration.add(response.timings.duration, tags, key);
  builtin.httpReqWaiting.add(result.waitingMs, tags, key);
  if (expected !== undefined) builtin.httpReqFailed.add(expected ? 0 : 1, tags, key);
  if (iteration) builtin.httpReqDurationIntended.add(result.endedMs - iteration.intendedStartMs, tags, key);
  builtin.dataSent.add(result.bytesSent, tags, key);
  builtin.dataReceived.add(result.bytesReceived, tags, key);
  return response;
}

export async function asyncRequest(
  method: string,
  url: unknown,
  body?: Body,
  params?: Params | null,
): Promise<Response> {
  const ctx = currentContext();
  const prepared = prepare(method, url, body, params);
  const result = await httpClient().perform(prepared.spec, ctx?.iteration?.scenario.signal);
  return record(ctx, prepared, result);
}

/** Blocking request (see engine/sync-http.ts): it stalls every VU while it waits. */
export function request(method: string, url: unknown, body?: Body, params?: Params | null): Response {
  const prepared = prepare(method, url, body, params);
  return record(currentContext(), prepared, performSync(prepared.spec));
}

export const get = (url: unknown, params?: Params | null) => request("GET", url, null, params);
export const head = (url: unknown, params?: Params | null) => request("HEAD", url, null, params);
export const post = (url: unknown, body?: Body, params?: Params | null) => request("POST", url, body, params);
export const put = (url: unknown, body?: Body, params?: Params | null) => request("PUT", url, body, params);
export const patch = (url: unknown, body?: Body, params?: Params | null) => request("PATCH", url, body, params);
export const del = (url: unknown, body?: Body, params?: Params | null) => request("DELETE", url, body, params);
export const options = (url: unknown, body?: Body, params?: Params | null) => request("OPTIONS", url, body, params);

export default {
  asyncRequest,
  request,
  get,
  head,
  post,
  put,
  patch,
  del,
  options,
  expectedStatuses,
  setResponseCallback,
};
