import { randomUUID } from "node:crypto";
import type { RequestOptions } from "node:https";
import { KubeConfig } from "@kubernetes/client-node";
import { Agent, request } from "undici";
import type { Log } from "./log.js";
import {
  ANNOTATION_CREATION_TOKEN,
  type DeduplicationStatus,
  isActive,
  LABEL_FINGERPRINT,
  labelValue,
  type RemediationRequestObject,
  RR_API,
  remediationRequestName,
  stampCreation,
} from "./remediation-request.js";
import { type RetryPolicy, withRetry } from "./retry.js";
import type { GatewayConfig } from "./types.js";

/** Why a Kubernetes call failed, as a bounded metric label. */
export type KubeFailure =
  | "timeout"
  | "unavailable"
  | "rate_limited"
  | "invalid"
  | "forbidden"
  | "not_found"
  | "conflict";

export class KubeApiError extends Error {
  constructor(
    readonly reason: KubeFailure,
    readonly status: number | undefined,
    message: string,
  ) {
    super(message);
  }
  /** 429, 5xx, timeouts and connection failures may pass; 400/403/404/409/422 will not. */
  get retryable(): boolean {
    return this.reason === "timeout" || this.reason === "unavailable" || this.reason === "rate_limited";
  }
}

/** A create that got no answer (or a 5xx): the object may exist all the same, stamped with `token`. */
export class UncertainCreationError extends KubeApiError {
  constructor(
    cause: KubeApiError,
    readonly token: string,
  ) {
    super(cause.reason, cause.status, cause.message);
  }
}

/** Metric label for any failure of a Kubernetes step. */
export function failureReason(err: unknown): string {
  return err instanceof KubeApiError ? err.reason : "internal";
}

function failureFor(status: number): KubeFailure {
  if (status === 429) return "rate_limited";
  if (status === 403 || status === 401) return "forbidden";
  if (status === 404) return "not_found";
  if (status === 409) return "conflict";
  if (status === 400 || status === 422) return "invalid";
  return "unavailable";
}

function isTimeout(err: unknown): boolean {
  const e = err as { name?: string; code?: string };
  return e?.name === "TimeoutError" || e?.name === "AbortError" || /TIMEOUT|ABORTED/.test(e?.code ?? "");
}

export function loadKubeConfig(cfg: GatewayConfig["kubernetes"]): KubeConfig {
  const kc = new KubeConfig();
  if (cfg.mode === "in-cluster") kc.loadFromCluster();
  else if (cfg.kubeconfigPath) kc.loadFromFile(cfg.kubeconfigPath);
  else kc.loadFromDefault();
  return kc;
}

export interface KubeOptions {
  config: () => GatewayConfig;
  log: Log;
}

const CREDENTIALS_TTL_MS = 60_000;
const PROBE_INTERVAL_MS = 2_000;

/**
 * A small REST client for the few calls the gateway makes. KubeConfig
 * supplies the server, TLS material and credentials; undici keeps a
 * keep-alive pool, because the coalesced status writes run at the rate of
 * active fingerprints and a TLS handshake per call would dominate.
 */
export class KubeClient {
  private readonly server: string;
  private readonly agent: Promise<Agent>;
  private headers: { value: Record<string, string>; expiresAt: number } | undefined;
  private usable = true;
  private probe: NodeJS.Timeout | undefined;
  private readonly writeObservers: ((rr: RemediationRequestObject) => void)[] = [];

  constructor(
    private readonly kc: KubeConfig,
    private readonly opts: KubeOptions,
  ) {
    const cluster = kc.getCurrentCluster();
    if (!cluster) throw new Error("kubernetes: the kubeconfig names no current cluster");
    this.server = cluster.server.replace(/\/$/, "");
    const connectTimeoutMs = opts.config().kubernetes.requestTimeoutMs;
    this.agent = this.tlsOptions().then(
      (tls) => new Agent({ connect: { ...tls, timeout: connectTimeoutMs }, keepAliveTimeout: 30_000, connections: 64 }),
    );
  }

  /** False after a call failed for lack of an answer; a background probe flips it back. */
  healthy(): boolean {
    return this.usable;
  }

  async close(): Promise<void> {
    clearInterval(this.probe);
    await (await this.agent).close();
  }

  private async tlsOptions() {
    const opts: RequestOptions = {};
    await this.kc.applyToHTTPSOptions(opts);
    return {
      ca: opts.ca as string | undefined,
      cert: opts.cert as string | undefined,
      key: opts.key as string | undefined,
      servername: opts.servername,
      ...(opts.rejectUnauthorized !== undefined ? { rejectUnauthorized: opts.rejectUnauthorized } : {}),
    };
  }

  /** Credentials are re-read now and then: in-cluster tokens rotate. */
  private async authHeaders(): Promise<Record<string, string>> {
    if (this.headers && this.headers.expiresAt > Date.now()) return this.headers.value;
    const opts: RequestOptions = { headers: {} };
    await this.kc.applyToHTTPSOptions(opts);
    const value: Record<string, string> = {};
    for (const [k, v] of Object.entries(opts.headers ?? {})) if (v !== undefined) value[k] = String(v);
    if (opts.auth) value.Authorization = `Basic ${Buffer.from(opts.auth).toString("base64")}`;
    this.headers = { value, expiresAt: Date.now() + CREDENTIALS_TTL_MS };
    return value;
  }

  /** One HTTP call, no retry; `signal` is the caller's deadline. Throws KubeApiError for non-2xx and transport failures. */
  async send<T>(
    what: string,
    method: string,
    path: string,
    body?: unknown,
    contentType = "application/json",
    signal?: AbortSignal,
  ): Promise<T> {
    const timeoutMs = this.opts.config().kubernetes.requestTimeoutMs;
    let status: number;
    let text: string;
    const deadline = signal
      ? AbortSignal.any([AbortSignal.timeout(timeoutMs), signal])
      : AbortSignal.timeout(timeoutMs);
    try {
      const call = async () => {
        const res = await request(`${this.server}${path}`, {
          method: method as "GET",
          dispatcher: await this.agent,
          headers: { ...(await this.authHeaders()), accept: "application/json", "content-type": contentType },
          body: body === undefined ? undefined : JSON.stringify(body),
          signal: deadline,
        });
        return { status: res.statusCode, text: await res.body.text() };
      };
      ({ status, text } = await untilAborted(call(), deadline));
    } catch (err) {
      this.markUnusable();
      const timedOut = isTimeout(err);
      throw new KubeApiError(
        timedOut ? "timeout" : "unavailable",
        undefined,
        `${what}: ${timedOut ? `no answer within ${timeoutMs} ms` : `API server unreachable (${(err as Error).message})`}`,
      );
    }
    if (status >= 500) this.markUnusable();
    else this.usable = true;
    if (status >= 300) {
      let message = text.slice(0, 300);
      try {
        message = (JSON.parse(text) as { message?: string }).message ?? message;
      } catch {}
      throw new KubeApiError(failureFor(status), status, `${what}: HTTP ${status}: ${message}`);
    }
    return JSON.parse(text) as T;
  }

  /**
   * A streaming GET (a watch): resolves once the API server answered 200;
   * the body yields chunks until the server ends it or `signal` aborts.
   */
  async stream(what: string, path: string, signal: AbortSignal): Promise<AsyncIterable<unknown>> {
    let res: Awaited<ReturnType<typeof request>>;
    try {
      res = await request(`${this.server}${path}`, {
        method: "GET",
        dispatcher: await this.agent,
        headers: { ...(await this.authHeaders()), accept: "application/json" },
        signal,
      });
    } catch (err) {
      throw new KubeApiError("unavailable", undefined, `${what}: API server unreachable (${(err as Error).message})`);
    }
    if (res.statusCode !== 200) {
      const text = await res.body.text().catch(() => "");
      throw new KubeApiError(
        failureFor(res.statusCode),
        res.statusCode,
        `${what}: HTTP ${res.statusCode}: ${text.slice(0, 300)}`,
      );
    }
    return res.body;
  }

  /** `observer` sees every RemediationRequest this client created or wrote (as the API server returned it). */
  onWritten(observer: (rr: RemediationRequestObject) => void): void {
    this.writeObservers.push(observer);
  }

  private written(rr: RemediationRequestObject): RemediationRequestObject {
    for (const observe of this.writeObservers) observe(rr);
    return rr;
  }

  /** `send` with the configured retry policy (section 6), until `signal` (the caller's deadline) aborts. */
  call<T>(
    what: string,
    method: string,
    path: string,
    body?: unknown,
    contentType?: string,
    signal?: AbortSignal,
  ): Promise<T> {
    return withRetry(
      this.retryPolicy(),
      () => this.send<T>(what, method, path, body, contentType, signal),
      (err) => err instanceof KubeApiError && err.retryable,
      (err, attempt) =>
        this.opts.log.warn({ err: (err as Error).message, attempt }, "kubernetes call failed; retrying"),
      signal,
    );
  }

  private retryPolicy(): RetryPolicy {
    return this.opts.config().processing.retry;
  }

  private markUnusable(): void {
    this.usable = false;
    if (this.probe) return;
    this.probe = setInterval(() => {
      this.send("probe /version", "GET", "/version")
        .then(() => {
          clearInterval(this.probe);
          this.probe = undefined;
          this.usable = true;
        })
        .catch(() => {});
    }, PROBE_INTERVAL_MS);
    this.probe.unref();
  }

  // --- Namespaces ---------------------------------------------------------

  /** Labels of a Namespace, or null when it does not exist. */
  async namespaceLabels(name: string): Promise<Record<string, string> | null> {
    try {
      const ns = await this.call<{ metadata?: { labels?: Record<string, string> } }>(
        `get namespace ${name}`,
        "GET",
        `/api/v1/namespaces/${encodeURIComponent(name)}`,
      );
      return ns.metadata?.labels ?? {};
    } catch (err) {
      if (err instanceof KubeApiError && err.reason === "not_found") return null;
      throw err;
    }
  }

  // --- RemediationRequests ------------------------------------------------

  private rrPath(namespace: string, name?: string): string {
    const base = `/apis/${RR_API.group}/${RR_API.version}/namespaces/${encodeURIComponent(namespace)}/${RR_API.plural}`;
    return name ? `${base}/${encodeURIComponent(name)}` : base;
  }

  /** Every RemediationRequest of this fingerprint in the namespace, any phase. */
  async listByFingerprint(
    namespace: string,
    fingerprint: string,
    signal?: AbortSignal,
  ): Promise<RemediationRequestObject[]> {
    const selector = encodeURIComponent(`${LABEL_FINGERPRINT}=${labelValue(fingerprint)}`);
    const list = await this.call<{ items: RemediationRequestObject[] }>(
      `list RemediationRequests in ${namespace} by fingerprint`,
      "GET",
      `${this.rrPath(namespace)}?labelSelector=${selector}`,
      undefined,
      undefined,
      signal,
    );
    return list.items.filter((rr) => rr.spec?.signalFingerprint === fingerprint);
  }

  async getRemediationRequest(
    namespace: string,
    name: string,
    signal?: AbortSignal,
  ): Promise<RemediationRequestObject | null> {
    try {
      return await this.call(
        `get RemediationRequest ${namespace}/${name}`,
        "GET",
        this.rrPath(namespace, name),
        undefined,
        undefined,
        signal,
      );
    } catch (err) {
      if (err instanceof KubeApiError && err.reason === "not_found") return null;
      throw err;
    }
  }

  /**
   * Merge-patch of the status subresource. With `resourceVersion` the write
   * is conditional (409 when someone else wrote in between).
   */
  async patchStatus(
    namespace: string,
    name: string,
    status: { overallPhase?: string; deduplication: DeduplicationStatus },
    resourceVersion?: string,
  ): Promise<RemediationRequestObject> {
    const body = { ...(resourceVersion ? { metadata: { resourceVersion } } : {}), status };
    const rr = await this.call<RemediationRequestObject>(
      `patch status of RemediationRequest ${namespace}/${name}`,
      "PATCH",
      `${this.rrPath(namespace, name)}/status`,
      body,
      "application/merge-patch+json",
    );
    return this.written(rr);
  }

  /**
   * D1 at the source: returns the active request of this fingerprint if one
   * exists, else creates one. The name is derived from the fingerprint and the
   * number of requests that already exist, so concurrent creators collide on
   * the name and only one wins; the loser adopts the winner's request.
   * `known` (the caller's view: a lookup in the index, or a list it just made)
   * skips the list; an active request in it is adopted only once a GET confirms it.
   */
  async createOrAdopt(req: {
    namespace: string;
    fingerprint: string;
    build: (name: string) => object;
    known?: RemediationRequestObject[];
    /** Creation tokens of earlier attempts for this fingerprint whose outcome is unknown (see ours). */
    orphans?: string[];
    /** The caller's deadline: no call starts, and none is waited for, beyond it. */
    signal?: AbortSignal;
  }): Promise<{ created: boolean; rr: RemediationRequestObject }> {
    const { namespace, fingerprint, signal } = req;
    const token = randomUUID();
    /**
     * A request this creator (or an earlier one that gave up, `orphans`) sent, which landed
     * although no answer said so (a timeout, a retried POST answered 409), and nobody has
     * counted yet: its creation is finished here, so it is created (and audited) exactly once.
     */
    const ours = (rr: RemediationRequestObject) => {
      const stamp = rr.metadata.annotations?.[ANNOTATION_CREATION_TOKEN];
      return !!stamp && (stamp === token || !!req.orphans?.includes(stamp)) && !rr.status?.deduplication;
    };
    const found = (rr: RemediationRequestObject) => ({ created: ours(rr), rr });
    const existing = req.known ?? (await this.listByFingerprint(namespace, fingerprint, signal));
    const active = oldestActive(existing);
    if (active && req.known) {
      const current = await this.getRemediationRequest(namespace, active.metadata.name, signal);
      if (current && isActive(current)) return found(current);
      return this.createOrAdopt({ ...req, known: undefined }); // the caller's view was stale: look again
    }
    if (active) return found(active);
    try {
      return await this.createNamed(req, existing.length, token, found);
    } catch (err) {
      // Every failure here comes after a create was sent: the request may exist, stamped with the token.
      throw err instanceof KubeApiError ? new UncertainCreationError(err, token) : err;
    }
  }

  /** The create loop of createOrAdopt: a generation's name, and on 409 the request holding it. */
  private async createNamed(
    req: { namespace: string; fingerprint: string; build: (name: string) => object; signal?: AbortSignal },
    existing: number,
    token: string,
    found: (rr: RemediationRequestObject) => { created: boolean; rr: RemediationRequestObject },
  ): Promise<{ created: boolean; rr: RemediationRequestObject }> {
    const { namespace, fingerprint, signal } = req;
    // Generation = how many exist; bumped when a name is taken by a finished request.
    for (let generation = existing, bumps = 0; bumps < 8; generation++, bumps++) {
      const name = remediationRequestName(fingerprint, generation);
      try {
        const rr = this.written(
          await this.call<RemediationRequestObject>(
            `create RemediationRequest ${namespace}/${name}`,
            "POST",
            this.rrPath(namespace),
            stampCreation(req.build(name), token),
            undefined,
            signal,
          ),
        );
        return { created: true, rr };
      } catch (err) {
        if (!(err instanceof KubeApiError && err.reason === "conflict")) throw err;
        const taken = await this.getRemediationRequest(namespace, name, signal);
        if (taken && isActive(taken)) return found(taken);
        if (!taken) generation--; // deleted in between: the name is free again
      }
    }
    throw new KubeApiError(
      "conflict",
      409,
      `create RemediationRequest for ${fingerprint.slice(0, 12)} in ${namespace}: every candidate name is taken`,
    );
  }
}

/** undici may notice an abort only once a slow connection is up; the caller's deadline is kept regardless. */
function untilAborted<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

/** The request that currently stands for a fingerprint: the oldest one not in a terminal phase. */
export function oldestActive(items: RemediationRequestObject[]): RemediationRequestObject | undefined {
  return items
    .filter(isActive)
    .sort((a, b) => (a.metadata.creationTimestamp ?? "").localeCompare(b.metadata.creationTimestamp ?? ""))[0];
}
