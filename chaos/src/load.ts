// Background load for an experiment: an open model (the embedded runner's ArrivalSchedule, so the
// send rate never depends on how fast the gateway answers) with the load/ traffic model, every
// answer recorded: when it was sent, how long it took, its status, Retry-After, and what the
// gateway said it did with each signal (for reconciling against the real state).

import type { GeneratorCounts } from "../../harness/src/invariants.js";
import {
  DEFAULT_TRAFFIC,
  PROMETHEUS_PATH,
  type SignalRequest,
  signalRequest,
  type TrafficConfig,
  warmupRequest,
} from "../../load/lib/traffic.ts";
import { ArrivalSchedule } from "../../load/runner/engine/arrival-schedule.js";
import { HttpClient } from "../../load/runner/engine/http-client.js";

/** One request as the generator saw it. */
export interface Answer {
  /** Epoch ms at send. */
  at: number;
  /** Milliseconds until the answer (or the error). */
  ms: number;
  /** 0: no answer (timeout, connection error). */
  status: number;
  retryAfter: boolean;
  /** Content-Type of the answer. */
  contentType: string;
  /** Signals in the request. */
  signals: number;
  /** "valid" background traffic or a deliberately corrupted body. */
  kind: "valid" | "corrupt";
  /** Why a non-2xx came: the problem's detail (numbers as N), or the client's error with no answer. */
  reason?: string;
}

/** A non-2xx answer's reason, with its numbers as N so that answers of one kind tally together. */
function refusalReason(status: number, body: string, error: string): string {
  if (status === 0) return error.slice(0, 120);
  let detail = "";
  try {
    detail = String((JSON.parse(body) as { detail?: unknown }).detail ?? "");
  } catch {
    detail = body;
  }
  return detail.replace(/\d+(\.\d+)?/g, "N").slice(0, 120);
}

export interface LoadOptions {
  url: string;
  rate: number;
  seed: number;
  timeoutMs: number;
  /** Hard bound: the load stops by itself after this long even if nobody stops it. */
  maxDurationMs: number;
  /** Concurrent requests at most; beyond it an arrival is dropped (and counted), as k6's maxVUs. */
  maxInFlight?: number;
}

const TICK_MS = 5;

/** Distinct grouped notifications a burst cycles through (Alertmanager resends its groups). */
const GROUPED_NOTIFICATIONS = 20;
/** Largest grouped notification: under the gateway's default body limit (256 KiB). */
const MAX_NOTIFICATION_BYTES = 240 * 1024;

/** A request ready to send. */
interface Outgoing {
  path: string;
  body: string;
  signals: number;
}

/** A sender's own connection pool and how many of its requests are open. */
interface Sender {
  client: HttpClient;
  inFlight: number;
}
/** Active fingerprints: each is sent once in the warm-up, then most signals repeat one of them. */
const POOL_SIZE = 200;
/** Warm-up rate: first sightings create RemediationRequests, which the API server takes at its pace. */
const WARMUP_RATE = 100;

interface Outcome {
  status: string;
  fingerprint?: string;
}

/** Parses the gateway's answer into per-signal outcomes (201/202: one; 207: one per result). */
function outcomes(status: number, body: string): Outcome[] {
  if (status !== 201 && status !== 202 && status !== 207) return [];
  try {
    const value = JSON.parse(body) as Outcome & { results?: Outcome[] };
    const of = (o: Outcome) => ({ status: String(o.status), fingerprint: o.fingerprint });
    return status === 207 ? (value.results ?? []).map(of) : [of(value)];
  } catch {
    return [{ status: "unparseable" }];
  }
}

/**
 * A bounded open-model sender. `sendCustom` lets a fault add its own requests (corrupted
 * bodies) beside the valid traffic, recorded in the same list.
 */
export class BackgroundLoad {
  readonly answers: Answer[] = [];
  readonly counts: Required<GeneratorCounts> = {
    created: 0,
    duplicate: 0,
    stormAggregated: 0,
    unanswered: 0,
    byFingerprint: new Map(),
  };
  /** Outcomes the accounting does not know (e.g. "unparseable"), by name. */
  readonly otherOutcomes: Record<string, number> = {};
  dropped = 0;
  sent = 0;
  /** The main sender's connections and requests open (a burst has its own). */
  private readonly main: Sender;
  /** The next iteration of the traffic model the main sender sends. */
  private iteration = 0;
  /** Burst senders, whose connections close with the main sender's. */
  private readonly bursts: Sender[] = [];
  private readonly traffic: TrafficConfig;
  private running: Promise<void> | undefined;
  private stopping = false;
  private readonly pending = new Set<Promise<void>>();
  /** Send times of the valid requests still waiting for their answer. */
  private readonly waiting = new Set<{ at: number }>();
  private readonly abort = new AbortController();

  constructor(private readonly opts: LoadOptions) {
    // Ten seconds of arrivals may wait on a stalled gateway before the generator drops any.
    // One connection per request in flight, as k6 gives each VU its own: a request never waits
    // in the generator behind others, so a stalled gateway shows as drops, not as queued time.
    this.main = { client: new HttpClient(this.maxInFlight), inFlight: 0 };
    // No storms: an experiment is about one fault at a time, not about storm windows closing in it.
    this.traffic = {
      ...DEFAULT_TRAFFIC,
      seed: opts.seed,
      poolSize: POOL_SIZE,
      stormEvery: 0,
      startTimeMs: Math.floor(Date.now() / 60_000) * 60_000,
    };
  }

  /** Iterations 0..poolSize-1 are the warm-up (each pool member once), then the traffic model. */
  private request(i: number): SignalRequest {
    return i < this.traffic.poolSize
      ? warmupRequest(this.traffic, i)
      : signalRequest(this.traffic, i - this.traffic.poolSize);
  }

  /** At most one second of arrivals in flight (k6's maxVUs); beyond it an arrival is dropped. */
  private get maxInFlight(): number {
    return this.opts.maxInFlight ?? Math.max(100, this.opts.rate);
  }

  /** How long the warm-up (each pool member once, at WARMUP_RATE) and the ramp to the rate take. */
  get warmupMs(): number {
    return (POOL_SIZE / WARMUP_RATE) * 1000 + 1000;
  }

  start(): void {
    // Exactly POOL_SIZE arrivals at the warm-up rate, a one-second ramp, then the rate.
    const schedule = new ArrivalSchedule({
      startRate: WARMUP_RATE,
      stages: [
        { target: WARMUP_RATE, durationMs: (POOL_SIZE / WARMUP_RATE) * 1000 },
        { target: this.opts.rate, durationMs: 1000 },
        { target: this.opts.rate, durationMs: this.opts.maxDurationMs },
      ],
      timeUnitMs: 1000,
    });
    const maxInFlight = this.maxInFlight;
    this.running = (async () => {
      const t0 = performance.now();
      for (let i = 0; !this.stopping; i++) {
        const offset = schedule.offsetOf(i);
        if (offset === undefined) break;
        const wait = t0 + offset - performance.now();
        if (wait > TICK_MS) await new Promise((r) => setTimeout(r, wait));
        if (this.stopping) break;
        this.iteration = i;
        if (this.main.inFlight >= maxInFlight) {
          this.dropped++;
          continue;
        }
        const req = this.request(i);
        this.track(this.post(`${this.opts.url}${req.path}`, req.body, req.meta.fingerprints.length, "valid"));
      }
    })();
  }

  /**
   * A burst: a second open-model sender of the same traffic at `rate` requests/s beside the
   * background rate, recorded like the rest, until stop(). It replays the iterations the main
   * sender is about to send (mostly duplicates, a few new signals, as a real burst) on its own
   * `maxInFlight` connections, so a gateway that queues instead of shedding has requests to pile up.
   * With `alertsPerRequest`, each request is instead one Alertmanager notification grouping that
   * many of those alerts (an incident's big groups), cycled through a few such notifications.
   */
  burst(
    rate: number,
    maxInFlight: number,
    alertsPerRequest?: number,
  ): { stop(): Promise<void>; sent(): number; dropped(): number } {
    if (!Number.isInteger(rate) || rate < 1) throw new Error(`burst: rate must be a whole number >= 1, got ${rate}`);
    if (!Number.isInteger(maxInFlight) || maxInFlight < 1)
      throw new Error(`burst: maxInFlight must be a whole number >= 1, got ${maxInFlight}`);
    if (alertsPerRequest !== undefined && (!Number.isInteger(alertsPerRequest) || alertsPerRequest < 1))
      throw new Error(`burst: alertsPerRequest must be a whole number >= 1, got ${alertsPerRequest}`);
    const sender: Sender = { client: new HttpClient(maxInFlight), inFlight: 0 };
    this.bursts.push(sender);
    const from = this.iteration;
    const groups = alertsPerRequest ? this.notifications(from, alertsPerRequest, GROUPED_NOTIFICATIONS) : [];
    const next = (k: number): Outgoing => {
      if (groups.length > 0) return groups[k % groups.length] as Outgoing;
      const req = this.request(from + k);
      return { path: req.path, body: req.body, signals: req.meta.fingerprints.length };
    };
    let sent = 0;
    let dropped = 0;
    let stopped = false;
    const t0 = performance.now();
    const running = (async () => {
      for (let k = 0; !stopped && !this.stopping; k++) {
        const wait = t0 + (k * 1000) / rate - performance.now();
        if (wait > TICK_MS) await new Promise((r) => setTimeout(r, wait));
        // Behind schedule (a starved machine), it catches up without blocking the answers' handling.
        else if (k % 10 === 0) await new Promise((r) => setImmediate(r));
        if (stopped || this.stopping) break;
        if (sender.inFlight >= maxInFlight) {
          dropped++;
          this.dropped++;
          continue;
        }
        sent++;
        const req = next(k);
        this.track(this.post(`${this.opts.url}${req.path}`, req.body, req.signals, "valid", sender));
      }
    })();
    return {
      // Stops sending; the answers still open keep arriving and are recorded.
      stop: async () => {
        stopped = true;
        await running;
      },
      sent: () => sent,
      dropped: () => dropped,
    };
  }

  /**
   * `count` Alertmanager notifications of up to `alerts` alerts each (fewer where the body would
   * pass MAX_NOTIFICATION_BYTES): the alerts of the model's webhook requests from iteration `from`
   * on, in order, each notification taking the next ones.
   */
  private notifications(from: number, alerts: number, count: number): Outgoing[] {
    const out: Outgoing[] = [];
    let i = from;
    let carried: unknown[] = [];
    let envelope: { alerts: unknown[] } | undefined;
    while (out.length < count) {
      const grouped: unknown[] = [];
      let bytes = 1024; // the envelope around the alerts
      for (;;) {
        if (carried.length === 0) {
          const req = this.request(i++);
          if (req.kind !== "prometheus") continue;
          const body = JSON.parse(req.body) as { alerts: unknown[] };
          envelope ??= body;
          carried = body.alerts;
        }
        const size = JSON.stringify(carried[0]).length + 1;
        if (grouped.length === alerts || (grouped.length > 0 && bytes + size > MAX_NOTIFICATION_BYTES)) break;
        grouped.push(carried.shift());
        bytes += size;
      }
      out.push({
        path: PROMETHEUS_PATH,
        body: JSON.stringify({ ...envelope, alerts: grouped }),
        signals: grouped.length,
      });
    }
    return out;
  }

  /** One extra request to `url` beside the traffic (e.g. a corrupted body), recorded like the rest. */
  sendCustom(url: string, body: string | Uint8Array, kind: Answer["kind"]): void {
    if (this.stopping) return;
    this.track(this.post(url, body, 0, kind));
  }

  private track(p: Promise<void>): void {
    this.pending.add(p);
    void p.finally(() => this.pending.delete(p));
  }

  private async post(
    url: string,
    body: string | Uint8Array,
    signals: number,
    kind: Answer["kind"],
    via: Sender = this.main,
  ): Promise<void> {
    via.inFlight++;
    this.sent++;
    const at = Date.now();
    const ticket = { at };
    if (kind === "valid") this.waiting.add(ticket);
    const res = await via.client.perform(
      {
        method: "POST",
        url,
        headers: { "Content-Type": "application/json" },
        body,
        timeoutMs: this.opts.timeoutMs,
        responseType: "text",
      },
      this.abort.signal,
    );
    via.inFlight--;
    this.waiting.delete(ticket);
    this.answers.push({
      at,
      ms: res.endedMs - res.startedMs,
      status: res.status,
      retryAfter: res.headers["Retry-After"] !== undefined,
      contentType: res.headers["Content-Type"] ?? "",
      signals,
      kind,
      ...(res.status >= 200 && res.status < 300
        ? {}
        : { reason: refusalReason(res.status, String(res.body ?? ""), res.error) }),
    });
    if (kind !== "valid") return;
    if (res.status === 0) this.counts.unanswered += signals;
    const { byFingerprint } = this.counts;
    for (const { status, fingerprint } of outcomes(res.status, String(res.body ?? ""))) {
      if (status === "created") this.counts.created++;
      else if (status === "duplicate") this.counts.duplicate++;
      else if (status === "storm-aggregated") this.counts.stormAggregated++;
      else {
        this.otherOutcomes[status] = (this.otherOutcomes[status] ?? 0) + 1;
        continue;
      }
      if (fingerprint) byFingerprint.set(fingerprint, (byFingerprint.get(fingerprint) ?? 0) + 1);
    }
  }

  /** When the oldest valid request still waiting for its answer was sent (Infinity: none waits). */
  oldestWaiting(): number {
    let oldest = Number.POSITIVE_INFINITY;
    for (const t of this.waiting) oldest = Math.min(oldest, t.at);
    return oldest;
  }

  /** Stops sending and waits for the answers in flight (bounded by the request timeout). */
  async stop(): Promise<void> {
    this.stopping = true;
    await this.running;
    await Promise.allSettled([...this.pending]);
    await Promise.all([this.main, ...this.bursts].map((s) => s.client.close()));
  }

  /** Stops at once, abandoning requests in flight (interrupt). */
  async abortNow(): Promise<void> {
    this.stopping = true;
    this.abort.abort();
    await this.stop();
  }
}
