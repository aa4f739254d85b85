// Performs one HTTP request on undici and times it the way k6 reports it. Used directly for
// http.asyncRequest and from the sync-request worker for http.request/get/post.
import { STATUS_CODES } from "node:http";
import { Agent, request } from "undici";

export type ResponseType = "text" | "binary" | "none";

export interface HttpRequestSpec {
  method: string;
  url: string;
  headers: Record<string, string>;
  body?: string | Uint8Array;
  timeoutMs: number;
  responseType: ResponseType;
}

export interface HttpResult {
  status: number;
  statusText: string;
  proto: string;
  headers: Record<string, string>;
  body: string | ArrayBuffer | null;
  /** performance.now() when the request was handed to the connection pool and when it ended. */
  startedMs: number;
  endedMs: number;
  waitingMs: number;
  receivingMs: number;
  bytesSent: number;
  bytesReceived: number;
  error: string;
  errorCode: number;
}

/** k6 canonical header names ("retry-after" → "Retry-After"), as Go's net/http presents them. */
export function canonicalHeader(name: string): string {
  return name.toLowerCase().replace(/(^|-)([a-z])/g, (_m, dash: string, c: string) => dash + c.toUpperCase());
}

// k6 error codes (lib/netext/httpext/error_codes.go) for the failures a local test meets.
const ERROR_CODES: Record<string, [number, string]> = {
  ECONNREFUSED: [1212, "connect: connection refused"],
  ECONNRESET: [1220, "read: connection reset by peer"],
  EPIPE: [1201, "write: broken pipe"],
  ENOTFOUND: [1101, "no such host"],
  EAI_AGAIN: [1100, "temporary DNS failure"],
  UND_ERR_CONNECT_TIMEOUT: [1211, "dial: i/o timeout"],
  UND_ERR_SOCKET: [1220, "connection closed by peer"],
  UND_ERR_CLOSED: [1220, "connection closed"],
};

function classify(err: unknown, timedOut: boolean, url: string): [number, string] {
  if (timedOut) return [1050, "request timeout"];
  const e = err as { code?: string; name?: string; message?: string };
  if (e.name === "AbortError" || e.code === "UND_ERR_ABORTED")
    return [1000, "request aborted: the scenario was stopped"];
  if (e.code === "ERR_INVALID_URL") return [1020, `invalid URL ${url}`];
  const known = e.code ? ERROR_CODES[e.code] : undefined;
  if (known) return [known[0], `${e.code} ${url}: ${known[1]}`];
  return [1000, `${url}: ${e.message ?? String(err)}`];
}

function headerBytes(headers: Record<string, string | string[] | undefined>): number {
  let n = 0;
  for (const [k, v] of Object.entries(headers))
    n += k.length + 4 + (Array.isArray(v) ? v.join(", ").length : (v ?? "").length);
  return n;
}

export class HttpClient {
  private readonly agent: Agent;

  /** `connections` per origin: enough that a request never waits for a socket held by another VU. */
  constructor(connections: number) {
    this.agent = new Agent({
      connections,
      pipelining: 1,
      keepAliveTimeout: 30_000,
      // Our own deadline (spec.timeoutMs) covers headers and body; undici's would cut in first.
      headersTimeout: 0,
      bodyTimeout: 0,
      connect: { timeout: 10_000 },
    });
  }

  async perform(spec: HttpRequestSpec, stop?: AbortSignal): Promise<HttpResult> {
    const timeout = AbortSignal.timeout(spec.timeoutMs);
    const signal = stop ? AbortSignal.any([timeout, stop]) : timeout;
    const bodyBytes =
      spec.body === undefined ? 0 : typeof spec.body === "string" ? Buffer.byteLength(spec.body) : spec.body.byteLength;
    const bytesSent = spec.method.length + spec.url.length + 12 + headerBytes(spec.headers) + bodyBytes;
    const startedMs = performance.now();
    let headersMs = startedMs;
    try {
      const res = await request(spec.url, {
        dispatcher: this.agent,
        method: spec.method as "GET",
        headers: spec.headers,
        body: spec.body,
        signal,
      });
      headersMs = performance.now();
      let body: string | ArrayBuffer | null = null;
      let bodyLength = 0;
      if (spec.responseType === "none") {
        await res.body.dump({ limit: Number.MAX_SAFE_INTEGER });
      } else if (spec.responseType === "binary") {
        body = await res.body.arrayBuffer();
        bodyLength = body.byteLength;
      } else {
        body = await res.body.text();
        bodyLength = Buffer.byteLength(body);
      }
      const endedMs = performance.now();
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(res.headers)) {
        if (v !== undefined) headers[canonicalHeader(k)] = Array.isArray(v) ? v.join(", ") : v;
      }
      return {
        status: res.statusCode,
        statusText: `${res.statusCode} ${STATUS_CODES[res.statusCode] ?? ""}`.trim(),
        proto: "HTTP/1.1",
        headers,
        body,
        startedMs,
        endedMs,
        waitingMs: headersMs - startedMs,
        receivingMs: endedMs - headersMs,
        bytesSent,
        bytesReceived: 17 + headerBytes(res.headers) + bodyLength,
        error: "",
        errorCode: 0,
      };
    } catch (err) {
      const endedMs = performance.now();
      const [errorCode, error] = classify(err, timeout.aborted, spec.url);
      return {
        status: 0,
        statusText: "",
        proto: "",
        headers: {},
        body: null,
        startedMs,
        endedMs,
        waitingMs: headersMs - startedMs,
        receivingMs: 0,
        bytesSent,
        bytesReceived: 0,
        error,
        errorCode,
      };
    }
  }

  async close(): Promise<void> {
    await this.agent.destroy();
  }
}

let shared: HttpClient | undefined;
let sharedConnections = 64;

/** Sizes the VUs' shared client; the engine calls it with the scenarios' total maxVUs before the run. */
export function configureHttp(connections: number): void {
  sharedConnections = connections;
}

export function httpClient(): HttpClient {
  shared ??= new HttpClient(sharedConnections);
  return shared;
}

export async function closeHttp(): Promise<void> {
  await shared?.close();
  shared = undefined;
}
