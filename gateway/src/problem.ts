import { STATUS_CODES } from "node:http";
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { ProblemError } from "./types.js";

/** RFC 7807 replies (section 2): one slug and title per status. */
const PROBLEMS: Record<number, { slug: string; title: string }> = {
  400: { slug: "validation-error", title: "Bad Request" },
  401: { slug: "unauthorized", title: "Unauthorized" },
  403: { slug: "forbidden", title: "Forbidden" },
  404: { slug: "not-found", title: "Not Found" },
  405: { slug: "method-not-allowed", title: "Method Not Allowed" },
  413: { slug: "payload-too-large", title: "Request Entity Too Large" },
  415: { slug: "unsupported-media-type", title: "Unsupported Media Type" },
  429: { slug: "too-many-requests", title: "Too Many Requests" },
  500: { slug: "internal-error", title: "Internal Server Error" },
  503: { slug: "service-unavailable", title: "Service Unavailable" },
  504: { slug: "gateway-timeout", title: "Gateway Timeout" },
};

export const PROBLEM_TYPE_BASE = "https://kubernaut.ai/problems/";
export const PROBLEM_CONTENT_TYPE = "application/problem+json";

/** Seconds a caller should wait before retrying, when the thrower did not say. */
const DEFAULT_RETRY_AFTER: Record<number, number> = { 429: 1, 503: 5 };

/** Longest request path echoed back as `instance`. */
const MAX_INSTANCE_LENGTH = 256;

export interface ProblemBody {
  type: string;
  title: string;
  status: number;
  detail: string;
  instance: string;
  request_id: string;
}

function describeStatus(status: number): { slug: string; title: string } {
  const known = PROBLEMS[status];
  if (known) return known;
  const title = STATUS_CODES[status] ?? "Error";
  return { slug: title.toLowerCase().replace(/[^a-z0-9]+/g, "-"), title };
}

/** The request path without query string, shortened so a hostile URL is not echoed whole. */
function requestPath(request: FastifyRequest): string {
  const path = request.url.split("?", 1)[0] ?? "/";
  return path.length > MAX_INSTANCE_LENGTH ? `${path.slice(0, MAX_INSTANCE_LENGTH)}…` : path;
}

export function problemBody(status: number, detail: string, request: FastifyRequest): ProblemBody {
  const { slug, title } = describeStatus(status);
  return {
    type: PROBLEM_TYPE_BASE + slug,
    title,
    status,
    detail,
    instance: requestPath(request),
    request_id: String(request.id),
  };
}

/** Sends a problem+json reply with the headers its status calls for. */
export function sendProblem(
  request: FastifyRequest,
  reply: FastifyReply,
  status: number,
  detail: string,
  retryAfter?: number,
): FastifyReply {
  const wait = retryAfter ?? DEFAULT_RETRY_AFTER[status];
  if (wait !== undefined) reply.header("retry-after", String(Math.max(1, Math.ceil(wait))));
  if (status === 415) reply.header("accept", "application/json");
  if (status === 401) reply.header("www-authenticate", 'Bearer realm="gateway"');
  return reply
    .code(status)
    .type(PROBLEM_CONTENT_TYPE)
    .send(problemBody(status, detail, request));
}

interface AjvError {
  instancePath: string;
  keyword: string;
  params: Record<string, unknown>;
  message?: string;
  propertyName?: string;
}

const IDENTIFIER = /^[A-Za-z_$][\w$]*$/;

/** `/alerts/2/labels/team` → `alerts[2].labels.team` (keys quoted when needed, never long). */
export function fieldPath(pointer: string, extra?: string): string {
  const segments = pointer === "" ? [] : pointer.slice(1).split("/");
  if (extra !== undefined) segments.push(extra.replace(/~/g, "~0").replace(/\//g, "~1"));
  let out = "";
  for (const raw of segments) {
    const key = raw.replace(/~1/g, "/").replace(/~0/g, "~");
    if (/^\d+$/.test(key)) out += `[${key}]`;
    else if (IDENTIFIER.test(key)) out += out ? `.${key}` : key;
    else out += `[${JSON.stringify(key.length > 64 ? `${key.slice(0, 64)}…` : key)}]`;
  }
  return out;
}

const ARTICLE_TYPES: Record<string, string> = {
  object: "an object",
  array: "an array",
  string: "a string",
  integer: "an integer",
  number: "a number",
  boolean: "true or false",
  null: "null",
};

/** One schema violation, in words that name the field and the limit (never the value). */
export function describeValidation(errors: readonly AjvError[]): string {
  const e = errors[0];
  if (!e) return "request body is invalid";
  const where = fieldPath(e.instancePath) || "request body";
  const limit = e.params.limit;
  if (e.propertyName !== undefined) {
    return e.keyword === "minLength"
      ? `${where} must not contain an empty key`
      : `${where} has a key longer than ${limit} characters`;
  }
  switch (e.keyword) {
    case "required":
      return `${fieldPath(e.instancePath, String(e.params.missingProperty))} is required`;
    case "type": {
      const types = String(e.params.type).split(",");
      return `${where} must be ${types.map((t) => ARTICLE_TYPES[t] ?? t).join(" or ")}`;
    }
    case "minItems":
    case "minLength":
      return limit === 1 ? `${where} must not be empty` : `${where} must have at least ${limit} entries`;
    case "maxItems":
    case "maxProperties":
      return `${where} has too many entries (at most ${limit} allowed)`;
    case "maxLength":
      return `${where} is too long (at most ${limit} characters allowed)`;
    case "enum":
      return `${where} must be one of: ${(e.params.allowedValues as unknown[]).map(String).join(", ")}`;
    case "minimum":
      return `${where} must be at least ${limit}`;
    default:
      return `${where} ${e.message ?? "is invalid"}`;
  }
}

/** Maps anything thrown while serving a request to (status, detail, retry-after). */
function classify(
  err: FastifyError | ProblemError,
  request: FastifyRequest,
  bodyLimit: number,
): { status: number; detail: string; retryAfter?: number } {
  if (err instanceof ProblemError) return { status: err.status, detail: err.detail, retryAfter: err.retryAfter };
  const fe = err as FastifyError & { validation?: AjvError[] };
  if (fe.validation) {
    const detail =
      request.body === undefined ? "request body is empty; send a JSON object" : describeValidation(fe.validation);
    return { status: 400, detail };
  }
  switch (fe.code) {
    case "FST_ERR_CTP_BODY_TOO_LARGE":
      return { status: 413, detail: `request body is larger than the limit of ${bodyLimit} bytes (server.bodyLimit)` };
    case "FST_ERR_CTP_INVALID_MEDIA_TYPE":
      return { status: 415, detail: "request body must be application/json" };
    case "FST_ERR_CTP_INVALID_CONTENT_LENGTH":
      return { status: 400, detail: "request body size did not match the Content-Length header" };
  }
  const status = fe.statusCode ?? 500;
  // Fastify's own 4xx messages describe the request, never its content.
  if (status >= 400 && status < 500) return { status, detail: fe.message };
  return { status: 500, detail: "internal error while handling the request; it is safe to retry" };
}

/**
 * Root-level error and not-found handling: every failure becomes problem+json,
 * known paths with the wrong method get 405 with `Allow`, and stack traces
 * only ever reach the log.
 */
export function installProblemHandling(app: FastifyInstance, opts: { bodyLimit: number }): void {
  const methodsByPath = new Map<string, Set<string>>();
  app.addHook("onRoute", (route) => {
    const methods = methodsByPath.get(route.url) ?? new Set<string>();
    for (const m of [route.method].flat()) methods.add(m);
    methodsByPath.set(route.url, methods);
  });

  app.setErrorHandler((err: FastifyError | ProblemError, request, reply) => {
    const { status, detail, retryAfter } = classify(err, request, opts.bodyLimit);
    // A ProblemError is an expected outcome (a dependency down, a deadline): its detail says it all,
    // and serializing a stack per refused request would cost most exactly when the gateway is busiest.
    if (status >= 500 && !(err instanceof ProblemError)) request.log.error({ err, status }, "request failed");
    else if (status >= 500) request.log.warn({ status, detail }, "request failed");
    else request.log.debug({ status, detail }, "request refused");
    return sendProblem(request, reply, status, detail, retryAfter);
  });

  app.setNotFoundHandler((request, reply) => {
    const path = requestPath(request);
    const allowed = methodsByPath.get(path);
    if (allowed) {
      const list = [...allowed].sort().join(", ");
      reply.header("allow", list);
      return sendProblem(request, reply, 405, `${request.method} is not supported on ${path}; use ${list}`);
    }
    return sendProblem(request, reply, 404, `no route for ${request.method} ${path}`);
  });
}
