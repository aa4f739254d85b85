// The end-to-end DSL: Given / When / Then on Vitest fixtures, in the spirit of
// Argo CD's e2e fixture and sigs.k8s.io/e2e-framework.
//
//   scenario("one alert is remediated", async ({ given, when, then }) => {
//     const world = await given.stack({ namespaces: { shop: { environment: "production" } } });
//     const alert = await when.alertFires({ alert: "PodCrashLooping", namespace: "shop", pod: "api-0" });
//     await then.remediationRequest(alert).reaches("Completed");
//   });
//
// Every step is recorded in the test's meta (e2e/suite/reporter.ts turns it into
// the run's summary and report). Every expectation polls the real state until a
// deadline and, failing, says what it last saw: the request's status, its phase
// history as a watch saw it, its children, its audit rows.
import { createHash } from "node:crypto";
import { type CoreV1Event, CustomObjectsApi, makeInformer } from "@kubernetes/client-node";
import { Redis } from "ioredis";
import { test as base, type TaskMeta } from "vitest";
import { stringify } from "yaml";
import type { Experiment } from "../../chaos/src/experiment.js";
import { BackgroundLoad } from "../../chaos/src/load.js";
import { type ExperimentResult, runExperiment } from "../../chaos/src/runner.js";
import { AlertmanagerServer } from "../../harness/src/components/alertmanager.js";
import { auditEvents } from "../../harness/src/components/data-storage.js";
import type { ConfigTree } from "../../harness/src/components/gateway.js";
import { KubeCluster } from "../../harness/src/components/kube-api.js";
import { PrometheusServer } from "../../harness/src/components/prometheus.js";
import {
  AIAnalysisStandIn,
  type BehaviourRule,
  EventExporterStandIn,
  OrchestratorStandIn,
  STANDIN_CRDS,
  setBehaviourRules,
  WorkflowExecutionStandIn,
} from "../../harness/src/components/standins.js";
import { type Check, type GeneratorCounts, reconcile } from "../../harness/src/invariants.js";
import { eventually } from "../../harness/src/poll.js";
import { LocalStack, type StartedLocalStack } from "../../harness/src/stack.js";
import { NAMESPACES } from "../../load/lib/traffic.ts";
import { bearer, sendAlert } from "./alert-post.js";

export interface E2eStep {
  kind: "given" | "when" | "then";
  text: string;
  ok: boolean;
  ms: number;
  detail?: string;
}

export interface E2eMeta {
  scenario: number;
  title: string;
  steps: E2eStep[];
}

declare module "vitest" {
  interface TaskMeta {
    e2e?: E2eMeta;
  }
}

export interface StackSpec {
  /** Gateway settings on top of the stack's own. */
  gateway?: ConfigTree;
  /** Namespaces with their labels (e.g. environment: production). */
  namespaces?: Record<string, Record<string, string>>;
  /** AI Analysis rules (standins/README.md). */
  aiAnalysis?: BehaviourRule[];
  /** Workflow Execution rules. */
  workflowExecution?: BehaviourRule[];
  /** The orchestrator's deadline per phase (default 60s). */
  phaseTimeout?: string;
  /** Forward Warning events from the API server to the gateway. */
  eventExporter?: boolean;
  /** Another gateway entry point: a patched copy (harness patchedGateway()) for a can-fail run. */
  gatewayMain?: string;
}

export interface RemediationRequestObject {
  metadata: {
    name: string;
    namespace: string;
    uid: string;
    labels?: Record<string, string>;
    ownerReferences?: { apiVersion: string; kind: string; name: string; uid: string; controller?: boolean }[];
  };
  spec: Record<string, unknown> & { signalFingerprint: string; signalName: string };
  status?: Record<string, unknown> & {
    overallPhase?: string;
    deduplication?: { occurrenceCount: number; firstSeenAt: string; lastSeenAt: string };
  };
}

/** A signal the scenario sent or caused: what identifies its request. */
export interface SignalRef {
  fingerprint: string;
  signalName: string;
  namespace: string;
}

/** sha256(signalName:namespace:kind:name), as the contract defines the fingerprint. */
export function fingerprintOf(signalName: string, namespace: string, kind: string, name: string): string {
  return createHash("sha256").update(`${signalName}:${namespace}:${kind}:${name}`).digest("hex");
}

const GROUP = { group: "kubernaut.ai", version: "v1alpha1" } as const;

const onCluster = () => process.env.E2E_TARGET === "cluster";

/** e2e:cluster must not quietly test a local stack instead of the user's cluster. */
function localStackOnly(what: string): void {
  if (onCluster()) throw new Error(`${what} needs the local stack (e2e:lifecycle), not an existing cluster`);
}

/** A setting of e2e:cluster (e2e/suite/run.ts puts them in the environment). */
function clusterSetting(name: string, flag: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`on an existing cluster this step needs ${flag}`);
  return value;
}
const describeValue = (v: unknown) => JSON.stringify(v, null, 0)?.slice(0, 1500);

/** Every phase a watch saw each request in, in order (consecutive repeats folded). */
class PhaseHistory {
  readonly byRequest = new Map<string, string[]>();
  private stopInformer: (() => Promise<void>) | undefined;

  async start(kube: KubeCluster): Promise<void> {
    const kc = kube.kubeConfig();
    const api = kc.makeApiClient(CustomObjectsApi);
    const informer = makeInformer<RemediationRequestObject & { apiVersion?: string; kind?: string }>(
      kc,
      "/apis/kubernaut.ai/v1alpha1/remediationrequests",
      () => api.listClusterCustomObject({ ...GROUP, plural: "remediationrequests" }),
    );
    const record = (rr: RemediationRequestObject) => {
      const key = `${rr.metadata.namespace}/${rr.metadata.name}`;
      const seen = this.byRequest.get(key) ?? [];
      const phase = rr.status?.overallPhase ?? "(none)";
      if (seen[seen.length - 1] !== phase) seen.push(phase);
      this.byRequest.set(key, seen);
    };
    informer.on("add", record);
    informer.on("update", record);
    await informer.start();
    this.stopInformer = () => informer.stop();
  }

  of(rr: { metadata: { namespace: string; name: string } }): string[] {
    return this.byRequest.get(`${rr.metadata.namespace}/${rr.metadata.name}`) ?? [];
  }

  async stop(): Promise<void> {
    await this.stopInformer?.();
  }
}

/** What a scenario runs against: the local stack, the stand-ins, and what watches them. */
export class World {
  /** The signals the scenario itself sent (webhooks, clients) and how they were answered, for the accounting. */
  readonly sent: Required<GeneratorCounts> = {
    created: 0,
    duplicate: 0,
    stormAggregated: 0,
    unanswered: 0,
    byFingerprint: new Map(),
  };

  /** In e2e:cluster, a suffix that makes this run's signals new to a long-lived gateway. */
  private readonly runSuffix = onCluster() ? `-${Date.now().toString(36)}` : "";

  constructor(
    /** The API server: the local stack's, or the user's cluster. */
    readonly kube: KubeCluster,
    private readonly gateway: string,
    /** Sent with the scenario's own posts: a ServiceAccount's token on a cluster, nothing locally. */
    readonly senderHeaders: Record<string, string>,
    private readonly local: StartedLocalStack | undefined,
    readonly phases: PhaseHistory,
  ) {}

  /** The local stack's processes; steps that need them refuse an existing cluster. */
  get stack(): StartedLocalStack {
    if (!this.local) throw new Error("this step needs the local stack (e2e:lifecycle), not an existing cluster");
    return this.local;
  }

  /** The alert as this run sends it (its pod suffixed on a cluster, so a rerun is a first sighting again). */
  named(alert: AlertSpec): AlertSpec {
    return this.runSuffix ? { ...alert, pod: `${alert.pod}${this.runSuffix}` } : alert;
  }

  /** Counts one answer of a one-alert webhook the scenario sent (status 0: no answer). */
  count(status: number, body: WebhookAnswer["body"]): void {
    if (status === 0) this.sent.unanswered++;
    const outcome = { created: "created", duplicate: "duplicate", "storm-aggregated": "stormAggregated" } as const;
    const field = status >= 200 && status < 300 ? outcome[body.status as keyof typeof outcome] : undefined;
    if (!field) return;
    this.sent[field]++;
    // A storm member is counted in its storm's request, not under its own fingerprint.
    const fp = field === "stormAggregated" ? "" : String(body.fingerprint ?? "");
    if (fp) this.sent.byFingerprint.set(fp, (this.sent.byFingerprint.get(fp) ?? 0) + 1);
  }

  gatewayUrl(): string {
    return this.gateway;
  }

  async remediationRequests(): Promise<RemediationRequestObject[]> {
    const list = (await this.kube
      .clients()
      .custom.listClusterCustomObject({ ...GROUP, plural: "remediationrequests" })) as {
      items: RemediationRequestObject[];
    };
    return list.items;
  }

  async requestsOf(signal: SignalRef): Promise<RemediationRequestObject[]> {
    return (await this.remediationRequests()).filter((rr) => rr.spec.signalFingerprint === signal.fingerprint);
  }

  async child(plural: "aianalyses" | "workflowexecutions", namespace: string, name: string) {
    return (await this.kube
      .clients()
      .custom.getNamespacedCustomObject({ ...GROUP, plural, namespace, name })) as RemediationRequestObject;
  }

  /** The signal's deduplication hash in Redis (empty when there is none). */
  async dedupHash(signal: SignalRef): Promise<Record<string, string>> {
    const redis = this.local
      ? this.local.redis.client()
      : new Redis(clusterSetting("E2E_REDIS_URL", "--redis-url (the Redis the gateway uses)"));
    try {
      return await redis.hgetall(`gateway:dedup:fingerprint:${signal.fingerprint}`);
    } finally {
      redis.disconnect();
    }
  }

  /** Audit rows of a signal in Data Storage (PostgreSQL), in arrival order. */
  async auditTrail(signal: SignalRef) {
    const query = { correlation_id: signal.fingerprint, limit: 1000 };
    const rows = this.local
      ? await this.local.dataStorage.events(query)
      : await auditEvents(
          clusterSetting("E2E_DATA_STORAGE_URL", "--data-storage-url (where Data Storage answers)"),
          query,
        );
    return rows.sort((a, b) => a.id - b.id);
  }

  /** What a failed expectation about `signal` last saw, for its message. */
  async lastSeen(signal: SignalRef): Promise<string> {
    const rrs = await this.requestsOf(signal).catch((err: Error) => err.message);
    if (typeof rrs === "string") return `requests: ${rrs}`;
    const parts = rrs.map(
      (rr) =>
        `${rr.metadata.namespace}/${rr.metadata.name} status ${describeValue(rr.status)} phases seen ${this.phases.of(rr).join(" → ")}`,
    );
    const audit = await this.auditTrail(signal).catch(() => []);
    return `${rrs.length} request(s) for ${signal.signalName}: ${parts.join("; ") || "none"}; audit: ${audit.map((e) => e.event_type).join(", ") || "none"}`;
  }
}

interface Recorder {
  step<T>(
    kind: E2eStep["kind"],
    text: string,
    work: () => Promise<T>,
    detail?: (value: T) => string | undefined,
  ): Promise<T>;
}

function recorder(meta: TaskMeta, title: string): Recorder {
  const scenarioNumber = Number(/^(\d+)/.exec(title)?.[1] ?? 0);
  meta.e2e ??= { scenario: scenarioNumber, title: title.replace(/^\d+[.:]?\s*/, ""), steps: [] };
  const steps = meta.e2e.steps;
  return {
    async step(kind, text, work, detail) {
      const started = performance.now();
      try {
        const value = await work();
        steps.push({
          kind,
          text,
          ok: true,
          ms: Math.round(performance.now() - started),
          ...(detail && { detail: detail(value) }),
        });
        return value;
      } catch (err) {
        steps.push({
          kind,
          text,
          ok: false,
          ms: Math.round(performance.now() - started),
          detail: (err as Error).message.slice(0, 2000),
        });
        throw err;
      }
    },
  };
}

export class Given {
  world: World | undefined;
  private readonly cleanups: (() => Promise<unknown>)[] = [];

  constructor(private readonly rec: Recorder) {}

  /**
   * The local stack with the stand-in controllers (and the event exporter when asked); on an
   * existing cluster (e2e:cluster) its gateway and controllers, with the scenario's namespaces
   * and behaviour rules applied there.
   */
  stack(spec: StackSpec = {}): Promise<World> {
    if (onCluster()) return this.cluster(spec);
    const what = `the local stack${spec.eventExporter ? ", the event exporter" : ""} and the stand-in controllers`;
    return this.rec.step("given", what, async () => {
      const builder = new LocalStack()
        .withCrds(STANDIN_CRDS)
        // The load/ traffic model's namespaces, for scenarios under load.
        .withNamespaces(Object.fromEntries(NAMESPACES.map((ns) => [ns, { environment: "production" }])))
        .withNamespaces(spec.namespaces ?? {})
        .withGatewayConfig(spec.gateway ?? {});
      if (spec.gatewayMain) builder.withGatewayMain(spec.gatewayMain);
      const stack = await builder.start();
      this.cleanups.push(() => stack.stop());
      const started = await Promise.all([
        new OrchestratorStandIn(stack.kube).withPhaseTimeout(spec.phaseTimeout ?? "60s").start(),
        new AIAnalysisStandIn(stack.kube)
          .withStep("200ms")
          .withBehaviour(spec.aiAnalysis ?? [])
          .start(),
        new WorkflowExecutionStandIn(stack.kube)
          .withStep("200ms")
          .withBehaviour(spec.workflowExecution ?? [])
          .start(),
        ...(spec.eventExporter && stack.gateway
          ? [new EventExporterStandIn(stack.kube).withGateway(stack.gateway.getUrl()).start()]
          : []),
      ]);
      this.cleanups.push(() => Promise.allSettled(started.map((s) => s.stop())));
      const gateway = stack.gateway;
      if (!gateway) throw new Error("the local stack has no gateway");
      return this.watched(new World(stack.kube, gateway.getUrl(), {}, stack, new PhaseHistory()));
    });
  }

  private cluster(spec: StackSpec): Promise<World> {
    const url = clusterSetting("E2E_GATEWAY_URL", "--gateway-url");
    return this.rec.step("given", `the cluster's gateway at ${url} and its controllers`, async () => {
      for (const [field, what] of [
        ["gateway", "a gateway configured by the scenario"],
        ["gatewayMain", "a patched gateway"],
        ["phaseTimeout", "the orchestrator's phase timeout"],
      ] as const)
        if (spec[field] !== undefined) localStackOnly(what);
      const kube = new KubeCluster(clusterSetting("E2E_KUBECONFIG", "--kubeconfig"));
      const namespaces = Object.entries(spec.namespaces ?? {}).map(([name, labels]) =>
        stringify({ apiVersion: "v1", kind: "Namespace", metadata: { name, labels } }),
      );
      if (namespaces.length > 0) await kube.applyYaml(namespaces.join("---\n"), { fieldManager: "e2e" });
      // The stand-ins read their rules at each decision; real controllers ignore the ConfigMap.
      if (spec.aiAnalysis) await setBehaviourRules(kube, "aianalysis", spec.aiAnalysis);
      if (spec.workflowExecution) await setBehaviourRules(kube, "workflowexecution", spec.workflowExecution);
      // The gateway of an installation checks bearer tokens: the scenario sends as a ServiceAccount of its own.
      await kube.applyYaml(stringify({ apiVersion: "v1", kind: "Namespace", metadata: { name: "kubernaut-e2e" } }));
      const token = await kube.serviceAccountToken("kubernaut-e2e", "e2e-sender");
      return this.watched(new World(kube, url, bearer(token), undefined, new PhaseHistory()));
    });
  }

  private async watched(world: World): Promise<World> {
    await world.phases.start(world.kube);
    this.cleanups.push(() => world.phases.stop());
    this.world = world;
    return world;
  }

  /** The world of given.stack(); a step before it is a mistake in the scenario. */
  started(): World {
    if (!this.world) throw new Error("no stack: call given.stack() first");
    return this.world;
  }

  /** Something the scenario started, stopped at its end (newest first). */
  track(stop: () => Promise<unknown>): void {
    this.cleanups.push(stop);
  }

  /** Stops what this scenario started, newest first. */
  async teardown(): Promise<void> {
    for (const cleanup of this.cleanups.reverse()) await cleanup().catch(() => undefined);
  }
}

export interface AlertSpec {
  alert: string;
  namespace: string;
  pod: string;
  severity?: "critical" | "warning" | "info";
  labels?: Record<string, string>;
}

export class When {
  constructor(
    private readonly rec: Recorder,
    private readonly given: Given,
  ) {}

  private get world(): World {
    return this.given.started();
  }

  /**
   * A real Prometheus rule fires (expr vector(1)) and a real Alertmanager
   * delivers it to the gateway's webhook, repeating it as Alertmanager does.
   */
  alertFires(alert: AlertSpec): Promise<SignalRef> {
    return this.rec.step("when", `Prometheus rule ${alert.alert} fires and Alertmanager delivers it`, async () => {
      const spec = this.world.named(alert);
      const labels = {
        severity: spec.severity ?? "critical",
        namespace: spec.namespace,
        pod: spec.pod,
        ...spec.labels,
      };
      const rules = {
        groups: [{ name: "e2e", rules: [{ alert: spec.alert, expr: "vector(1)", for: "0s", labels }] }],
      };
      const am = await new AlertmanagerServer()
        .withWebhookReceiver(`${this.world.gatewayUrl()}/api/v1/signals/prometheus`, {
          bearerToken: this.world.senderHeaders.authorization?.replace(/^Bearer /, ""),
        })
        .start();
      this.given.track(() => am.stop());
      const prom = await new PrometheusServer()
        .withRuleFile(JSON.stringify(rules))
        .withAlertmanager(am.getUrl())
        .start();
      this.given.track(() => prom.stop());
      return {
        fingerprint: fingerprintOf(spec.alert, spec.namespace, "Pod", spec.pod),
        signalName: spec.alert,
        namespace: spec.namespace,
      };
    });
  }

  /** A core/v1 Warning Event is created in the API server (the exporter forwards it). */
  warningEvent(spec: { namespace: string; reason: string; pod: string; message?: string }): Promise<SignalRef> {
    return this.rec.step(
      "when",
      `a Warning event ${spec.reason} about pod ${spec.pod} is created in the API server`,
      async () => {
        const { pod } = this.world.named({ alert: spec.reason, namespace: spec.namespace, pod: spec.pod });
        const now = new Date();
        const event: CoreV1Event = {
          metadata: { name: `${pod}.${now.getTime().toString(16)}`, namespace: spec.namespace },
          type: "Warning",
          reason: spec.reason,
          message: spec.message ?? `${spec.reason} on ${pod}`,
          involvedObject: { kind: "Pod", name: pod, namespace: spec.namespace, apiVersion: "v1" },
          source: { component: "kubelet" },
          firstTimestamp: now,
          lastTimestamp: now,
          count: 1,
        };
        await this.world.kube.clients().core.createNamespacedEvent({ namespace: spec.namespace, body: event });
        return {
          fingerprint: fingerprintOf(spec.reason, spec.namespace, "Pod", pod),
          signalName: spec.reason,
          namespace: spec.namespace,
        };
      },
    );
  }

  /**
   * Background load (the chaos suite's open-model generator with the load/ traffic model),
   * bounded in time; every answer is recorded for the accounting. Stopped by
   * `then.everySignalAccountedFor(load)`, or at the end of the scenario.
   */
  loadRuns(rate: number, maxDurationMs = 60_000): Promise<BackgroundLoad> {
    return this.rec.step("when", `background load runs at ${rate} signals/s`, async () => {
      const load = new BackgroundLoad({
        url: this.world.gatewayUrl(),
        rate,
        seed: 1,
        timeoutMs: 10_000,
        maxDurationMs,
      });
      load.start();
      this.given.track(() => load.abortNow());
      await eventually(() => load.answers.length >= rate, {
        what: "a second of answers to the load",
        timeoutMs: 30_000,
      });
      return load;
    });
  }

  /**
   * One client (keyed by X-Forwarded-For, for a gateway that trusts it) sends `count`
   * alerts of its own at `rate` per second, open model; returns every answer.
   */
  clientSends(spec: { forwardedFor: string; rate: number; count: number; text?: string }): Promise<ClientAnswer[]> {
    const text = spec.text ?? `client ${spec.forwardedFor} sends ${spec.count} alerts at ${spec.rate}/s`;
    return this.rec.step(
      "when",
      text,
      async () => {
        const pending: Promise<ClientAnswer>[] = [];
        const started = performance.now();
        for (let i = 0; i < spec.count; i++) {
          const due = started + (i * 1000) / spec.rate;
          const wait = due - performance.now();
          if (wait > 0) await new Promise((r) => setTimeout(r, wait));
          // One fingerprint per client: its own first sighting, then duplicates (no storm of its own).
          const alert = { alert: "ClientAlert", namespace: NAMESPACES[0], pod: `client-${spec.forwardedFor}` };
          pending.push(
            timedPost(this.world.gatewayUrl(), alert, { "x-forwarded-for": spec.forwardedFor }).then((answer) => {
              this.world.count(answer.status, answer.body);
              return answer;
            }),
          );
        }
        return Promise.all(pending);
      },
      (answers) => `answers: ${tally(answers.map((a) => String(a.status)))}`,
    );
  }

  /**
   * Alertmanager webhooks (version 4) posted to the gateway, one alert each, one
   * after another; returns each answer's status and body.
   */
  webhooksSent(alerts: AlertSpec[], text?: string): Promise<{ signals: SignalRef[]; answers: WebhookAnswer[] }> {
    const what = text ?? `${alerts.length} Alertmanager webhook(s) are posted to the gateway`;
    return this.rec.step(
      "when",
      what,
      async () => {
        const answers: WebhookAnswer[] = [];
        const sent = alerts.map((a) => this.world.named(a));
        for (const alert of sent) {
          const answer = await postWebhook(this.world.gatewayUrl(), alert, this.world.senderHeaders);
          this.world.count(answer.status, answer.body);
          answers.push(answer);
        }
        return { signals: sent.map(signalOf), answers };
      },
      ({ answers }) => `answers: ${tally(answers.map((a) => `${a.status} ${a.body.status ?? ""}`.trim()))}`,
    );
  }

  /** The gateway's config file is changed and reloaded in place; throws unless the gateway applied it. */
  configChanges(partial: ConfigTree, text: string): Promise<void> {
    return this.rec.step("when", text, async () => {
      const outcome = await this.gateway().updateConfig(partial);
      if (outcome !== "success") throw new Error(`the gateway reported the reload as ${outcome}`);
    });
  }

  /** The config file is replaced by `content`; returns the reload outcome and what the gateway logged about it. */
  configFileReplaced(content: string, text: string): Promise<{ outcome: string; log: string }> {
    return this.rec.step(
      "when",
      text,
      async () => {
        const gateway = this.gateway();
        const outcome = await gateway.writeConfigFile(content);
        const log =
          gateway.process
            .logTail(20)
            .split("\n")
            .filter((l) => l.includes("configuration reload"))
            .pop() ?? "";
        return { outcome, log };
      },
      ({ outcome, log }) => `reload ${outcome}: ${log.slice(0, 400)}`,
    );
  }

  private gateway() {
    const gateway = this.world.stack.gateway;
    if (!gateway) throw new Error("the stack has no gateway");
    return gateway;
  }

  /** An action the scenario takes with its own client (a bearer token, another replica), recorded as a step. */
  does<T>(text: string, work: () => Promise<T>, detail?: (value: T) => string): Promise<T> {
    return this.rec.step("when", text, work, detail);
  }

  /**
   * SIGTERM to the gateway, its readiness polled every 20 ms until the process is gone;
   * returns the readiness answers seen (0: refused) and how it exited.
   */
  gatewayTerminates(): Promise<{ readiness: number[]; exit: { code: number | null; signal: string | null } }> {
    return this.rec.step(
      "when",
      "the gateway gets SIGTERM",
      async () => {
        const gateway = this.gateway();
        const exited = gateway.process.exited;
        gateway.process.signal("SIGTERM");
        const readiness: number[] = [];
        let done = false;
        void exited.then(() => {
          done = true;
        });
        // Bounded: the gateway's own drain and flush deadlines are far shorter.
        const deadline = Date.now() + 90_000;
        while (!done) {
          if (Date.now() > deadline)
            throw new Error(`the gateway did not exit within 90 s of SIGTERM; readiness seen ${readiness}`);
          const status = await fetch(`${gateway.getUrl()}/readyz`, { signal: AbortSignal.timeout(1_000) })
            .then(async (r) => (await r.arrayBuffer(), r.status))
            .catch(() => 0);
          if (readiness[readiness.length - 1] !== status) readiness.push(status);
          await new Promise((r) => setTimeout(r, 20));
        }
        return { readiness, exit: await exited };
      },
      ({ readiness, exit }) => `readiness seen: ${readiness.join(" → ")}; exit ${JSON.stringify(exit)}`,
    );
  }

  /** A chaos experiment (chaos/experiments) runs on its own stack: one implementation for both suites. */
  chaosExperimentRuns(experiment: Experiment): Promise<ExperimentResult> {
    return this.rec.step(
      "when",
      `the chaos experiment ${experiment.name} runs`,
      async () => {
        localStackOnly(`the chaos experiment ${experiment.name}`);
        return runExperiment(experiment);
      },
      (r) => `${r.verdict}${r.reason ? `: ${r.reason}` : ""}; ${JSON.stringify(r.figures).slice(0, 600)}`,
    );
  }

  /** The gateway process is stopped (SIGTERM: graceful; SIGKILL: no cleanup at all) and started again. */
  gatewayRestarts(signal: "SIGTERM" | "SIGKILL"): Promise<void> {
    return this.rec.step("when", `the gateway is stopped with ${signal} and started again`, async () => {
      const process = this.world.stack.gateway?.process;
      if (!process) throw new Error("the stack has no gateway");
      if (signal === "SIGKILL") await process.kill("SIGKILL");
      else {
        const exit = await process.stop();
        if (exit.code !== 0) throw new Error(`the gateway exited ${JSON.stringify(exit)} on SIGTERM, not 0`);
      }
      await process.start();
    });
  }
}

export interface WebhookAnswer {
  status: number;
  body: { status?: string; remediationRequestName?: string; [k: string]: unknown };
}

export const signalOf = (a: AlertSpec): SignalRef => ({
  fingerprint: fingerprintOf(a.alert, a.namespace, "Pod", a.pod),
  signalName: a.alert,
  namespace: a.namespace,
});

/** "201 created ×1, 202 duplicate ×4" */
function tally(items: string[]): string {
  const counts = new Map<string, number>();
  for (const i of items) counts.set(i, (counts.get(i) ?? 0) + 1);
  return [...counts].map(([k, n]) => `${k} ×${n}`).join(", ");
}

export interface ClientAnswer {
  /** Epoch ms at send. */
  at: number;
  status: number;
  ms: number;
  retryAfter: string | null;
  body: WebhookAnswer["body"];
}

async function timedPost(gatewayUrl: string, alert: AlertSpec, headers: Record<string, string>): Promise<ClientAnswer> {
  const at = Date.now();
  const started = performance.now();
  try {
    const res = await sendWebhook(gatewayUrl, alert, headers);
    const body = (await res.json().catch(() => ({}))) as WebhookAnswer["body"];
    return {
      at,
      status: res.status,
      ms: performance.now() - started,
      retryAfter: res.headers.get("retry-after"),
      body,
    };
  } catch {
    return { at, status: 0, ms: performance.now() - started, retryAfter: null, body: {} };
  }
}

async function postWebhook(
  gatewayUrl: string,
  alert: AlertSpec,
  headers: Record<string, string>,
): Promise<WebhookAnswer> {
  const res = await sendWebhook(gatewayUrl, alert, headers);
  return { status: res.status, body: (await res.json().catch(() => ({}))) as WebhookAnswer["body"] };
}

function sendWebhook(gatewayUrl: string, alert: AlertSpec, headers: Record<string, string>): Promise<Response> {
  const labels = {
    alertname: alert.alert,
    severity: alert.severity ?? "critical",
    namespace: alert.namespace,
    pod: alert.pod,
    ...alert.labels,
  };
  return sendAlert(gatewayUrl, labels, headers);
}

export class RequestExpectation {
  constructor(
    private readonly rec: Recorder,
    private readonly world: World,
    private readonly signal: SignalRef,
  ) {}

  /** Exactly one request for the signal, in `phase`, within `withinMs`. */
  reaches(phase: string, withinMs = 60_000): Promise<RemediationRequestObject> {
    return this.rec.step(
      "then",
      `the RemediationRequest of ${this.signal.signalName} reaches ${phase}`,
      async () => {
        try {
          return await eventually(
            async () => {
              const rrs = await this.world.requestsOf(this.signal);
              if (rrs.length !== 1) throw new Error(`${rrs.length} requests`);
              const rr = rrs[0] as RemediationRequestObject;
              if (rr.status?.overallPhase !== phase) throw new Error(`phase ${rr.status?.overallPhase ?? "(none)"}`);
              return rr;
            },
            { what: `the request of ${this.signal.signalName} in ${phase}`, timeoutMs: withinMs, intervalMs: 250 },
          );
        } catch (err) {
          throw new Error(
            `${(err as Error).message.split("; last saw")[0]}; last saw: ${await this.world.lastSeen(this.signal)}`,
          );
        }
      },
      (rr) => `${rr.metadata.namespace}/${rr.metadata.name}: phases seen ${this.world.phases.of(rr).join(" → ")}`,
    );
  }
}

export class Then {
  constructor(
    private readonly rec: Recorder,
    private readonly given: Given,
  ) {}

  private get world(): World {
    return this.given.started();
  }

  remediationRequest(signal: SignalRef): RequestExpectation {
    return new RequestExpectation(this.rec, this.world, signal);
  }

  /**
   * Stops the load, then reconciles every 2xx it and the scenario's own senders saw against the
   * real state (requests, their counts, Redis, the audit trail, the gateway's counters in
   * Prometheus): nothing lost, nothing twice.
   */
  everySignalAccountedFor(load: BackgroundLoad, mode: "exact" | "no-loss" = "exact"): Promise<Check[]> {
    return this.rec.step(
      "then",
      `every signal answered 2xx is accounted for in the real state${mode === "no-loss" ? " (none lost)" : ""}`,
      async () => {
        await load.stop();
        const { kube, redis, dataStorage, prometheus } = this.world.stack;
        const seen = this.world.sent;
        const byFingerprint = new Map(load.counts.byFingerprint);
        for (const [fp, n] of seen.byFingerprint) byFingerprint.set(fp, (byFingerprint.get(fp) ?? 0) + n);
        const counts: GeneratorCounts = {
          created: load.counts.created + seen.created,
          duplicate: load.counts.duplicate + seen.duplicate,
          stormAggregated: load.counts.stormAggregated + seen.stormAggregated,
          unanswered: load.counts.unanswered + seen.unanswered,
          byFingerprint,
        };
        const checks = await reconcile(
          { kube, redis, dataStorage, prometheus },
          counts,
          { stallMs: 10_000, maxMs: 120_000 },
          mode,
        );
        const failed = checks.filter((c) => !c.ok);
        if (failed.length > 0)
          throw new Error(failed.map((c) => `${c.name}: expected ${c.expected}, observed ${c.observed}`).join("; "));
        return checks;
      },
      (checks) => checks.map((c) => `${c.name}: ${c.observed}`).join("; "),
    );
  }

  /**
   * A check of real state, polled until it holds or the deadline passes: `check`
   * throws (an expect failing) until it holds; its last error is the message.
   */
  holds<T>(text: string, check: () => Promise<T>, withinMs = 20_000): Promise<T> {
    // What the check returns (if anything) is what it saw, for the report.
    return this.rec.step(
      "then",
      text,
      () => eventually(check, { what: text, timeoutMs: withinMs, intervalMs: 250 }),
      (seen) => {
        try {
          return seen === undefined ? undefined : JSON.stringify(seen)?.slice(0, 500);
        } catch {
          return String(seen);
        }
      },
    );
  }
}

/** `scenario("N. title", async ({ given, when, then }) => ...)`: everything started is stopped after the test. */
/** What a scenario body gets: the three step builders. */
export interface Steps {
  given: Given;
  when: When;
  then: Then;
}

export const scenario = base.extend<Steps>({
  given: async ({ task }, use) => {
    const given = new Given(recorder(task.meta, task.name));
    try {
      await use(given);
    } finally {
      await given.teardown();
    }
  },
  when: async ({ task, given }, use) => {
    await use(new When(recorder(task.meta, task.name), given));
  },
  // biome-ignore lint/suspicious/noThenProperty: the DSL's word; a fixture table is never awaited, and the value in the context (a Then) is not callable
  then: async ({ task, given }, use) => {
    await use(new Then(recorder(task.meta, task.name), given));
  },
});

export { expect } from "vitest";
