// One runner for every experiment, in the order of a LitmusChaos run: start the stack → SOT
// probes (abort when the steady state is not reached) → start the load → inject each fault with
// OnChaos probes, Continuous probes throughout → remove it → measure recovery → stop the load →
// EOT probes → invariants → teardown. Every fault removal is registered with the supervisor's
// cleanup list the moment the fault is in place, so it is undone on a throw or Ctrl-C too.
import { mergeConfig } from "../../harness/src/components/gateway.js";
import { MemoryCgroup } from "../../harness/src/host/cgroup.js";
import { Tmpfs } from "../../harness/src/host/tmpfs.js";
import type { Check } from "../../harness/src/invariants.js";
import { rssBytes } from "../../harness/src/proc-stats.js";
import { ALL_LINKS, LocalStack, type StartedLocalStack } from "../../harness/src/stack.js";
import { deferCleanup } from "../../harness/src/supervisor.js";
import { NAMESPACES } from "../../load/lib/traffic.ts";
import { evaluateInvariants } from "./checks.js";
import { type Experiment, type Fault, linksUsed } from "./experiment.js";
import { FaultSeries } from "./fault-series.js";
import { type InjectedFault, inject } from "./faults.js";
import { type HostProbes, hostSupport } from "./host-support.js";
import { type Answer, BackgroundLoad } from "./load.js";
import { evaluateAll, evaluateDuring, type ProbeContext, type ProbeVerdict } from "./probes.js";

export interface RunnerOptions {
  /** A patched copy of the gateway (patchedGateway()), to show the experiment can fail. */
  gatewayMain?: string;
  /** One line per phase change and a status line every few seconds. */
  progress?: (line: string) => void;
  /** Stops the run early: the active fault is removed, then the stack torn down. */
  signal?: AbortSignal;
  /** How the host is asked what it offers (`requires`); a test gives a host that lacks something. */
  host?: HostProbes;
  /** Where the stack's Prometheus keeps its TSDB after the experiment (LocalStack.withPrometheusDataDir). */
  prometheusDataDir?: string;
}

/** One occurrence of a fault, with what the load saw meanwhile. */
export interface FaultRecord {
  name: string;
  kind: string;
  occurrence: number;
  injectedAt: number;
  removedAt: number | null;
  /** First to last non-2xx answer sent between injection and removal (+ recovery): the unavailability window. */
  window: { from: number; to: number; ms: number } | null;
  errorsByStatus: Record<string, number>;
  /** The same answers by status and reason (the problem's detail), most frequent first. */
  errorsByReason: Record<string, number>;
  figures: Record<string, number | string>;
  error?: string;
}

export interface TimelineBucket {
  /** Epoch seconds. */
  t: number;
  sent: number;
  ok: number;
  errors: number;
  p99Ms: number;
}

export interface ExperimentResult {
  name: string;
  description: string;
  verdict: "Pass" | "Fail";
  /** Why it failed, in one line. */
  reason: string;
  startedAt: string;
  endedAt: string;
  load: {
    rate: number;
    sent: number;
    dropped: number;
    byStatus: Record<string, number>;
    counts: Record<string, number>;
  };
  faults: FaultRecord[];
  probes: ProbeVerdict[];
  /** From the last fault's removal until the answers were all 2xx again (null: not within `waitedMs`). */
  recovery: { ms: number | null; steadyAfterMs: number; waitedMs: number };
  invariants: Check[];
  figures: Record<string, number | string | null>;
  timeline: TimelineBucket[];
  notes: string[];
}

/** Everything the checks see at the end. */
export interface RunRecord {
  experiment: Experiment;
  stack: StartedLocalStack;
  load: BackgroundLoad;
  faults: FaultRecord[];
  recovery: ExperimentResult["recovery"];
  /** The gateway's pid when the load started. */
  gatewayPid: number | undefined;
  /** The gateway's exit, when it died during the run (e.g. OOM-killed). */
  gatewayExit: { code: number | null; signal: string | null } | undefined;
  /** Answers in the window of any fault (injection to removal). */
  duringFaults(): Answer[];
  baseline: Answer[];
  peakRssBytes: number;
  /** OOM kills in the gateway's memory cgroup (stack.memoryLimitBytes), 0 without one. */
  oomKills: number;
  /** The most the gateway's memory cgroup was charged (bytes), 0 without one. */
  memoryMaxUsageBytes: number;
}

const is2xx = (s: number) => s >= 200 && s < 300;
/** How long answers must stay 2xx after the last removal to count as recovered. */
const STEADY_MS = 3_000;
const RECOVERY_LIMIT_MS = 90_000;

class Aborted extends Error {}

/** A pause that ends early, with Aborted, when the run is stopped. */
function wait(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new Aborted("the run was stopped"));
    const onAbort = () => {
      clearTimeout(timer);
      reject(new Aborted("the run was stopped"));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

function percentile(values: number[], q: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number;
}

export function timeline(answers: Answer[]): TimelineBucket[] {
  const buckets = new Map<number, Answer[]>();
  for (const a of answers) {
    const t = Math.floor(a.at / 1000);
    const list = buckets.get(t);
    if (list) list.push(a);
    else buckets.set(t, [a]);
  }
  return [...buckets.entries()]
    .sort(([a], [b]) => a - b)
    .map(([t, list]) => ({
      t,
      sent: list.length,
      ok: list.filter((a) => is2xx(a.status)).length,
      errors: list.filter((a) => !is2xx(a.status)).length,
      p99Ms: Math.round(
        percentile(
          list.map((a) => a.ms),
          0.99,
        ),
      ),
    }));
}

function tally(answers: Answer[], key: (a: Answer) => string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const a of answers) out[key(a)] = (out[key(a)] ?? 0) + 1;
  return Object.fromEntries(Object.entries(out).sort((x, y) => y[1] - x[1]));
}

const byStatus = (answers: Answer[]) => tally(answers, (a) => String(a.status));
const byReason = (answers: Answer[]) => tally(answers, (a) => `${a.status}: ${a.reason ?? ""}`);

/** Valid-traffic answers sent in [from, to]. */
function answersBetween(load: BackgroundLoad, from: number, to: number): Answer[] {
  return load.answers.filter((a) => a.kind === "valid" && a.at >= from && a.at <= to);
}

function windowOf(answers: Answer[]): FaultRecord["window"] {
  const bad = answers.filter((a) => !is2xx(a.status));
  if (bad.length === 0) return null;
  const from = Math.min(...bad.map((a) => a.at));
  const to = Math.max(...bad.map((a) => a.at + a.ms));
  return { from, to, ms: Math.round(to - from) };
}

/**
 * The start of a STEADY_MS stretch of 2xx after the last non-2xx sent since `since`, in the answers
 * so far; every request sent in the stretch must have its answer (one still waiting may yet fail).
 */
function steadySince(load: BackgroundLoad, since: number): number | null {
  const answers = load.answers.filter((a) => a.kind === "valid" && a.at >= since);
  const lastBad = answers.reduce((t, a) => (is2xx(a.status) ? t : Math.max(t, a.at)), 0);
  const stretchStart = lastBad === 0 ? since : lastBad;
  const latestOk = answers.reduce((t, a) => (is2xx(a.status) ? Math.max(t, a.at) : t), 0);
  const end = stretchStart + STEADY_MS;
  return latestOk >= end && load.oldestWaiting() >= end ? stretchStart : null;
}

/**
 * How long recovery is waited for: past an experiment's own bound (recovers-within) the verdict is
 * known, so the run does not wait out the general limit.
 */
function recoveryLimitMs(experiment: Experiment): number {
  const bounds = experiment.invariants.flatMap((i) => (i.kind === "recovers-within" ? [i.ms] : []));
  return bounds.length ? Math.min(RECOVERY_LIMIT_MS, Math.max(...bounds) + STEADY_MS + 2_000) : RECOVERY_LIMIT_MS;
}

/**
 * Waits until the valid answers sent since `since` have been 2xx for STEADY_MS in a row;
 * returns the start of that stretch (or null at the limit).
 */
async function recoveredAt(
  load: BackgroundLoad,
  since: number,
  limitMs: number,
  alive: () => boolean,
): Promise<number | null> {
  const deadline = Date.now() + limitMs;
  for (;;) {
    const start = steadySince(load, since);
    if (start !== null) return start;
    // A gateway that died (e.g. OOM-killed) does not recover: no point waiting out the limit.
    if (Date.now() > deadline || !alive()) return null;
    await wait(250);
  }
}

/** The gateway's last fatal log line (pino level 60) as "msg: error", e.g. why it exited. */
function fatalLine(log: string): string | undefined {
  for (const line of log.split("\n").reverse()) {
    try {
      const entry = JSON.parse(line) as { level?: number; msg?: string; err?: { message?: string } | string };
      if (entry.level !== 60) continue;
      const err = typeof entry.err === "string" ? entry.err : entry.err?.message;
      return err ? `${entry.msg}: ${err}` : entry.msg;
    } catch {
      // not a log entry (e.g. a stack trace line)
    }
  }
  return undefined;
}

function fail(result: ExperimentResult, reason: string): void {
  result.verdict = "Fail";
  if (!result.reason) result.reason = reason;
}

export async function runExperiment(experiment: Experiment, opts: RunnerOptions = {}): Promise<ExperimentResult> {
  const say = (line: string) => opts.progress?.(`[${experiment.name}] ${line}`);
  const result: ExperimentResult = {
    name: experiment.name,
    description: experiment.description,
    verdict: "Pass",
    reason: "",
    startedAt: new Date().toISOString(),
    endedAt: "",
    load: { rate: experiment.load.rate, sent: 0, dropped: 0, byStatus: {}, counts: {} },
    faults: [],
    probes: [],
    recovery: { ms: null, steadyAfterMs: STEADY_MS, waitedMs: recoveryLimitMs(experiment) },
    invariants: [],
    figures: {},
    timeline: [],
    notes: [],
  };

  const missing = hostSupport(experiment.requires ?? [], opts.host);
  if (missing.length > 0) {
    fail(result, `not runnable here: ${missing.join("; ")}`);
    result.endedAt = new Date().toISOString();
    return result;
  }
  const links = experiment.stack.links ?? [...ALL_LINKS];
  const unproxied = [...linksUsed(experiment)].filter((l) => !links.includes(l));
  if (unproxied.length > 0) {
    fail(
      result,
      `the experiment uses link(s) ${unproxied.join(", ")}, which its stack.links (${links.join(", ")}) leave out`,
    );
    result.endedAt = new Date().toISOString();
    return result;
  }

  const undo: Array<() => Promise<void>> = [];
  let memory: MemoryCgroup | undefined;
  // An OOM kill explains every other failure of the run (probes, answers, recovery): it comes first.
  const oomKilled = () => {
    const kills = memory?.oomKills() ?? 0;
    if (kills > 0 && !experiment.invariants.some((i) => i.kind === "oom-killed" && i.expected))
      fail(
        result,
        `the gateway was OOM-killed: ${kills} kill(s) in its memory cgroup (limit ${Math.round((experiment.stack.memoryLimitBytes ?? 0) / 1048576)} MiB)`,
      );
  };
  let stack: StartedLocalStack | undefined;
  let load: BackgroundLoad | undefined;
  let status: ReturnType<typeof setInterval> | undefined;
  let continuous: ReturnType<typeof evaluateDuring> | undefined;
  try {
    say("starting the stack");
    let gatewayConfig = mergeConfig(
      // One generator is one client: no per-client rate limit. The gateway sheds before the
      // generator runs out of connections, and its request deadline is below the generator's
      // timeout, so an overloaded gateway answers 503/504 rather than nothing.
      { rateLimit: { enabled: false }, backpressure: { maxInFlight: 500 }, server: { requestTimeout: "10s" } },
      experiment.stack.gateway ?? {},
    );
    if (experiment.stack.journalTmpfsBytes) {
      const tmpfs = await Tmpfs.mount({ sizeBytes: experiment.stack.journalTmpfsBytes });
      undo.push(() => tmpfs.unmount());
      gatewayConfig = mergeConfig(gatewayConfig, { dataStorage: { journalDir: `${tmpfs.path}/journal` } });
    }
    if (experiment.stack.memoryLimitBytes) {
      const group = await MemoryCgroup.create("gateway-memory");
      memory = group;
      undo.push(() => group.remove());
      await group.setLimit(experiment.stack.memoryLimitBytes);
      result.figures["gateway memory limit (MiB)"] = Math.round(experiment.stack.memoryLimitBytes / 1048576);
    }
    let builder = new LocalStack()
      .withToxiproxy(links)
      .withNamespaces(Object.fromEntries(NAMESPACES.map((ns) => [ns, { environment: "production" }])))
      .withGatewayConfig(gatewayConfig);
    if (experiment.stack.redis === "sentinel") builder = builder.withSentinel();
    if (opts.gatewayMain) builder = builder.withGatewayMain(opts.gatewayMain);
    if (memory) builder = builder.withGatewayCgroups([memory.path]);
    if (opts.prometheusDataDir) builder = builder.withPrometheusDataDir(opts.prometheusDataDir);
    stack = await builder.start();
    const started = stack;
    const stopStack = deferCleanup(`stack of ${experiment.name}`, () => started.stop());
    undo.push(stopStack);
    // Stopped before the stack (undo runs newest first), so the last sample, 0, reaches its Prometheus.
    const faultSeries = new FaultSeries(
      stack.prometheus.remoteWriteUrl(),
      experiment.name,
      experiment.faults.map((f) => f.name),
      (l) => result.notes.push(l),
    );
    undo.push(deferCleanup(`chaos_fault_active of ${experiment.name}`, () => faultSeries.stop()));
    await faultSeries.start();
    if (experiment.stack.replicationLatencyMs) {
      // Replicas behind the master the way they are under load: every kill lands while one lags.
      const lag = await inject(
        {
          kind: "toxic",
          link: "replication",
          toxic: { type: "latency", attributes: { latency: experiment.stack.replicationLatencyMs, jitter: 0 } },
          reachOpenConnections: true,
        },
        { stack, note: (l) => result.notes.push(l) },
      );
      undo.push(lag.remove);
    }

    const ctx: ProbeContext = {
      urls: {
        gateway: stack.gateway?.getUrl() ?? "",
        ingress: links.includes("ingress") ? stack.ingressUrl() : "",
        dataStorage: stack.dataStorage.getUrl(),
        prometheus: stack.prometheus.getUrl(),
      },
      prometheus: stack.prometheus,
      kube: stack.kube,
    };

    say("SOT probes");
    const sot = await evaluateAll(experiment.probes, "SOT", ctx);
    result.probes.push(...sot);
    if (sot.some((v) => v.verdict === "Failed")) {
      fail(
        result,
        `steady state not reached: ${sot
          .filter((v) => v.verdict === "Failed")
          .map((v) => `${v.name} (${v.message})`)
          .join("; ")}`,
      );
      return result;
    }

    const gatewayPid = stack.gateway?.process.pid;
    let gatewayExit: RunRecord["gatewayExit"];
    void stack.gateway?.process.exited.then((e) => {
      gatewayExit = e;
    });
    const url =
      experiment.load.via === "direct" || !links.includes("ingress")
        ? (stack.gateway?.getUrl() ?? "")
        : stack.ingressUrl();
    const faultsMs = experiment.faults.reduce(
      (sum, f) => sum + (f.repeat ?? 1) * (f.durationMs + (f.afterMs ?? 0) + 120_000),
      0,
    );
    load = new BackgroundLoad({
      url,
      rate: experiment.load.rate,
      seed: 1,
      timeoutMs: experiment.load.timeoutMs ?? 15_000,
      maxDurationMs: (experiment.load.leadInMs ?? 10_000) + faultsMs + RECOVERY_LIMIT_MS + 120_000,
    });
    const running = load;
    undo.push(deferCleanup(`load of ${experiment.name}`, () => running.abortNow()));
    let peakRss = 0;
    status = setInterval(() => {
      const last = running.answers.slice(-experiment.load.rate * 2);
      const errors = last.filter((a) => !is2xx(a.status)).length;
      say(
        `sent ${running.sent}, last 2 s: ${last.length} answers, ${errors} non-2xx, p99 ${Math.round(
          percentile(
            last.map((a) => a.ms),
            0.99,
          ),
        )} ms`,
      );
      const pid = stack?.gateway?.process.pid;
      if (pid) peakRss = Math.max(peakRss, rssBytes(pid));
    }, 2_000);

    say(`load ${experiment.load.rate}/s, lead-in ${experiment.load.leadInMs ?? 10_000} ms`);
    load.start();
    continuous = evaluateDuring(experiment.probes, "Continuous", ctx);
    await wait(load.warmupMs + (experiment.load.leadInMs ?? 10_000), opts.signal);
    const baselineTo = Date.now();
    const baseline = answersBetween(load, baselineTo - 5_000, baselineTo);

    const faultCtx = { stack, load, note: (l: string) => result.notes.push(l) };
    let lastRemoved = Date.now();
    for (const fault of experiment.faults) {
      for (let n = 1; n <= (fault.repeat ?? 1); n++) {
        if (fault.afterMs) await wait(fault.afterMs, opts.signal);
        const record = await runFault(fault, n, faultCtx, faultSeries, experiment, ctx, result, say, opts.signal);
        result.faults.push(record);
        lastRemoved = record.removedAt ?? Date.now();
        if (record.error) {
          fail(result, `fault ${fault.name} #${n}: ${record.error}`);
          break;
        }
      }
      if (result.verdict === "Fail") break;
    }
    if (opts.signal?.aborted) throw new Aborted("the run was stopped");

    say("measuring recovery");
    let recovered = await recoveredAt(
      load,
      lastRemoved,
      result.recovery.waitedMs,
      () => !!started.gateway?.process.running,
    );

    say("stopping the load");
    await load.stop();
    // A request sent after the steady stretch that failed (answered only now) moves the recovery
    // point past it, or voids it when the load stopped too soon after.
    if (recovered !== null) recovered = steadySince(load, lastRemoved);
    result.recovery.ms = recovered === null ? null : Math.max(0, Math.round(recovered - lastRemoved));
    // Each fault's window extends into the recovery that followed it.
    for (const [i, record] of result.faults.entries()) {
      const until = result.faults[i + 1]?.injectedAt ?? (recovered ?? Date.now()) + 1_000;
      const answers = answersBetween(load, record.injectedAt, until);
      record.window = windowOf(answers);
      const errors = answers.filter((a) => !is2xx(a.status));
      record.errorsByStatus = byStatus(errors);
      record.errorsByReason = byReason(errors);
    }
    clearInterval(status);
    result.probes.push(...(await continuous.stop()));
    continuous = undefined;
    say("EOT probes");
    result.probes.push(...(await evaluateAll(experiment.probes, "EOT", ctx)));

    say("invariants");
    const record: RunRecord = {
      experiment,
      stack,
      load,
      faults: result.faults,
      recovery: result.recovery,
      gatewayPid,
      gatewayExit,
      duringFaults: () =>
        running.answers.filter((a) =>
          result.faults.some((f) => a.at >= f.injectedAt && a.at <= (f.removedAt ?? Date.now())),
        ),
      baseline,
      peakRssBytes: peakRss,
      oomKills: memory?.oomKills() ?? 0,
      memoryMaxUsageBytes: memory?.maxUsage() ?? 0,
    };
    const { checks, figures } = await evaluateInvariants(experiment.invariants, record);
    result.invariants = checks;
    Object.assign(result.figures, figures);
    result.load = {
      rate: experiment.load.rate,
      sent: load.sent,
      dropped: load.dropped,
      byStatus: byStatus(load.answers.filter((a) => a.kind === "valid")),
      counts: (({ byFingerprint: _, ...counts }) => counts)(load.counts),
    };
    result.timeline = timeline(load.answers.filter((a) => a.kind === "valid"));
    oomKilled();
    // So does any other death of the gateway: say how it went, in its own last words.
    if (gatewayExit) {
      const last = stack.gateway ? fatalLine(stack.gateway.process.logTail(200)) : undefined;
      fail(
        result,
        `the gateway died during the run (exit code ${gatewayExit.code}, signal ${gatewayExit.signal})${last ? `: ${last}` : ""}`,
      );
    }
    for (const p of result.probes.filter((v) => v.verdict === "Failed"))
      fail(result, `probe ${p.name} (${p.phase}) failed: ${p.message}`);
    for (const c of checks.filter((c) => !c.ok))
      fail(result, `invariant failed: ${c.name}: expected ${c.expected}, observed ${c.observed}`);
    return result;
  } catch (err) {
    oomKilled();
    fail(result, `error: ${(err as Error).message}`);
    return result;
  } finally {
    clearInterval(status);
    await continuous?.stop();
    say(`tearing down (${result.verdict})`);
    for (const step of undo.reverse())
      await step().catch((err: Error) => result.notes.push(`teardown: ${err.message}`));
    result.endedAt = new Date().toISOString();
  }
}

async function runFault(
  fault: Fault,
  occurrence: number,
  faultCtx: Parameters<typeof inject>[1],
  faultSeries: FaultSeries,
  experiment: Experiment,
  ctx: ProbeContext,
  result: ExperimentResult,
  say: (line: string) => void,
  signal: AbortSignal | undefined,
): Promise<FaultRecord> {
  const record: FaultRecord = {
    name: fault.name,
    kind: fault.action.kind,
    occurrence,
    injectedAt: Date.now(),
    removedAt: null,
    window: null,
    errorsByStatus: {},
    errorsByReason: {},
    figures: {},
  };
  let injected: InjectedFault | undefined;
  let removeOnce: (() => Promise<void>) | undefined;
  try {
    say(`inject ${fault.name}${fault.repeat ? ` #${occurrence}/${fault.repeat}` : ""} for ${fault.durationMs} ms`);
    injected = await inject(fault.action, faultCtx);
    record.injectedAt = injected.startedAt ?? Date.now();
    const active = injected;
    removeOnce = deferCleanup(`fault ${fault.name}`, () => active.remove());
    await faultSeries.set(fault.name, true);
    const onChaos = evaluateDuring(experiment.probes, "OnChaos", ctx);
    await wait(fault.durationMs, signal).finally(async () => result.probes.push(...(await onChaos.stop())));
    say(`remove ${fault.name}`);
    await removeOnce();
    record.removedAt = Date.now();
    Object.assign(record.figures, injected.figures?.() ?? {});
  } catch (err) {
    record.error = (err as Error).message;
    await removeOnce?.().catch(() => undefined);
    record.removedAt ??= Date.now();
  } finally {
    await faultSeries.set(fault.name, false);
  }
  return record;
}
