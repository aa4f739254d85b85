// Steady-state probes with LitmusChaos semantics: an evaluation is up to 1 + retries attempts,
// each bounded by timeoutMs and intervalMs apart, and passes when one attempt meets the criteria.
// SOT and EOT evaluate once before and after the chaos (Edge: both); Continuous evaluates every
// pollingIntervalMs from the load's start to the last fault's removal, OnChaos only while a fault
// is active; one failed evaluation fails the probe. Every verdict keeps what the probe last saw.
import { spawn } from "node:child_process";
import type { StartedKubeApiServer } from "../../harness/src/components/kube-api.js";
import type { VectorSample } from "../../harness/src/components/prometheus.js";
import type { Comparator, Probe, ProbeMode } from "./experiment.js";

export interface ProbeContext {
  /** Base URLs the templates name: gateway, ingress, dataStorage, prometheus. */
  urls: Record<string, string>;
  prometheus: { query(promql: string): Promise<VectorSample[]> };
  kube: Pick<StartedKubeApiServer, "request">;
}

export type Phase = "SOT" | "EOT" | "Continuous" | "OnChaos";

export interface ProbeVerdict {
  name: string;
  type: Probe["type"];
  mode: ProbeMode;
  phase: Phase;
  verdict: "Passed" | "Failed";
  evaluations: number;
  failedEvaluations: number;
  /** What the last attempt saw (status, value, count, output or error). */
  lastSeen: string;
  /** For a failure: what the failing evaluation saw against what it wanted. */
  message: string;
}

interface Attempt {
  ok: boolean;
  seen: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function compare(c: Comparator, value: number): boolean {
  switch (c.op) {
    case "==":
      return value === c.value;
    case "!=":
      return value !== c.value;
    case "<":
      return value < c.value;
    case "<=":
      return value <= c.value;
    case ">":
      return value > c.value;
    case ">=":
      return value >= c.value;
  }
}

export function fillUrl(template: string, urls: Record<string, string>): string {
  return template.replace(/\{(\w+)\}/g, (_whole, name: string) => {
    const base = urls[name];
    if (!base)
      throw new Error(`probe URL ${template}: no endpoint named {${name}} (known: ${Object.keys(urls).join(", ")})`);
    return base.replace(/\/+$/, "");
  });
}

function withTimeout<T>(ms: number, what: string, work: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      controller.abort();
      reject(new Error(`${what}: no result within ${ms} ms`));
    }, ms);
  });
  return Promise.race([work(controller.signal), expired]).finally(() => clearTimeout(timer));
}

async function attempt(probe: Probe, ctx: ProbeContext): Promise<Attempt> {
  const { timeoutMs } = probe.runProperties;
  switch (probe.type) {
    case "http": {
      const url = fillUrl(probe.url, ctx.urls);
      const status = await withTimeout(timeoutMs, `${probe.method ?? "GET"} ${url}`, async (signal) => {
        const res = await fetch(url, {
          method: probe.method ?? "GET",
          body: probe.body,
          headers: probe.body ? { "Content-Type": "application/json" } : {},
          signal,
        });
        await res.arrayBuffer();
        return res.status;
      });
      const c = probe.criteria;
      const ok = c.op === "oneOf" ? c.codes.includes(status) : c.op === "==" ? status === c.code : status !== c.code;
      return { ok, seen: `status ${status}` };
    }
    case "prom": {
      const samples = await withTimeout(timeoutMs, `PromQL ${probe.query}`, () => ctx.prometheus.query(probe.query));
      const first = samples[0];
      if (!first) return { ok: false, seen: "no sample" };
      return { ok: compare(probe.comparator, first.value), seen: `value ${first.value}` };
    }
    case "k8s": {
      const base = probe.group ? `/apis/${probe.group}/${probe.version}` : `/api/${probe.version}`;
      const ns = probe.namespace ? `/namespaces/${probe.namespace}` : "";
      const query = probe.labelSelector ? `?labelSelector=${encodeURIComponent(probe.labelSelector)}` : "";
      const res = await ctx.kube.request("GET", `${base}${ns}/${probe.plural}${query}`, undefined, timeoutMs);
      if (res.status !== 200) return { ok: false, seen: `API server answered ${res.status}` };
      const count = (JSON.parse(res.body) as { items: unknown[] }).items.length;
      const op = probe.operation;
      const ok = op === "present" ? count > 0 : op === "absent" ? count === 0 : compare(op.count, count);
      return { ok, seen: `${count} ${probe.plural}` };
    }
    case "cmd": {
      const { code, stdout } = await run(probe.command, probe.args ?? [], timeoutMs);
      const want = probe.expect;
      const ok = code === want.exitCode && (want.stdoutIncludes === undefined || stdout.includes(want.stdoutIncludes));
      return { ok, seen: `exit ${code}, stdout ${JSON.stringify(stdout.slice(0, 200))}` };
    }
  }
}

function run(command: string, args: string[], timeoutMs: number): Promise<{ code: number; stdout: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ["ignore", "pipe", "ignore"], timeout: timeoutMs });
    let stdout = "";
    child.stdout.on("data", (d: Buffer) => {
      stdout += d.toString();
    });
    child.once("error", reject);
    child.once("exit", (code, signal) =>
      signal
        ? reject(new Error(`${command}: ended by ${signal} (timeout ${timeoutMs} ms)`))
        : resolve({ code: code ?? 1, stdout }),
    );
  });
}

function criteriaOf(probe: Probe): string {
  switch (probe.type) {
    case "http":
      return probe.criteria.op === "oneOf"
        ? `status one of ${probe.criteria.codes.join(", ")}`
        : `status ${probe.criteria.op} ${probe.criteria.code}`;
    case "prom":
      return `value ${probe.comparator.op} ${probe.comparator.value}`;
    case "k8s":
      return typeof probe.operation === "string"
        ? `${probe.plural} ${probe.operation}`
        : `count ${probe.operation.count.op} ${probe.operation.count.value}`;
    case "cmd":
      return `exit ${probe.expect.exitCode}${probe.expect.stdoutIncludes ? `, stdout has ${JSON.stringify(probe.expect.stdoutIncludes)}` : ""}`;
  }
}

/** One evaluation: the first attempt that passes, or the last failure after every retry. */
export async function evaluate(probe: Probe, ctx: ProbeContext): Promise<Attempt> {
  let last: Attempt = { ok: false, seen: "nothing yet" };
  for (let i = 0; i <= probe.runProperties.retries; i++) {
    if (i > 0) await sleep(probe.runProperties.intervalMs);
    try {
      last = await attempt(probe, ctx);
    } catch (err) {
      last = { ok: false, seen: `error: ${(err as Error).message}` };
    }
    if (last.ok) return last;
  }
  return last;
}

const inPhase: Record<Phase, ProbeMode[]> = {
  SOT: ["SOT", "Edge"],
  EOT: ["EOT", "Edge"],
  Continuous: ["Continuous"],
  OnChaos: ["OnChaos"],
};

export function probesFor(probes: Probe[], phase: Phase): Probe[] {
  return probes.filter((p) => inPhase[phase].includes(p.mode));
}

function verdict(probe: Probe, phase: Phase, results: Attempt[]): ProbeVerdict {
  const failed = results.filter((r) => !r.ok);
  const last = results.at(-1);
  return {
    name: probe.name,
    type: probe.type,
    mode: probe.mode,
    phase,
    verdict: failed.length === 0 && results.length > 0 ? "Passed" : "Failed",
    evaluations: results.length,
    failedEvaluations: failed.length,
    lastSeen: last?.seen ?? "never evaluated",
    message:
      results.length === 0
        ? "never evaluated (the phase ended before its first evaluation)"
        : failed[0]
          ? `wanted ${criteriaOf(probe)}, saw ${failed[0].seen}`
          : "",
  };
}

/** SOT or EOT: each probe evaluated once (after its initial delay). */
export async function evaluateAll(probes: Probe[], phase: "SOT" | "EOT", ctx: ProbeContext): Promise<ProbeVerdict[]> {
  return Promise.all(
    probesFor(probes, phase).map(async (p) => {
      if (p.runProperties.initialDelayMs) await sleep(p.runProperties.initialDelayMs);
      return verdict(p, phase, [await evaluate(p, ctx)]);
    }),
  );
}

/** Continuous or OnChaos: evaluations every pollingIntervalMs until `stop()`. */
export function evaluateDuring(
  probes: Probe[],
  phase: "Continuous" | "OnChaos",
  ctx: ProbeContext,
): { stop(): Promise<ProbeVerdict[]> } {
  let stopped = false;
  const sleepers = new Set<() => void>();
  const pause = (ms: number) =>
    new Promise<void>((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        sleepers.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      sleepers.add(wake);
    });
  const loops = probesFor(probes, phase).map(async (p) => {
    const results: Attempt[] = [];
    if (p.runProperties.initialDelayMs) await pause(p.runProperties.initialDelayMs);
    while (!stopped) {
      results.push(await evaluate(p, ctx));
      if (!stopped) await pause(p.runProperties.pollingIntervalMs ?? 1000);
    }
    return verdict(p, phase, results);
  });
  return {
    async stop() {
      stopped = true;
      for (const wake of [...sleepers]) wake();
      return Promise.all(loops);
    },
  };
}
