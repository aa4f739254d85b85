import { rmSync } from "node:fs";
import { join } from "node:path";
import { stringify } from "yaml";
import { repoRoot, scratchDir } from "../paths.js";
import { freePort } from "../ports.js";
import { httpReady } from "../probes.js";
import { ManagedProcess } from "../supervisor.js";
import type { KubeCluster, StartedKubeApiServer } from "./kube-api.js";

const DEPLOY = join(repoRoot, "standins", "deploy");
const MAIN = join(repoRoot, "standins", "src", "main.ts");
/** The children's CRDs, for `KubeApiServer.withCrds()` / `LocalStack.withCrds()`. */
export const STANDIN_CRDS = [join(DEPLOY, "crd-aianalysis.yaml"), join(DEPLOY, "crd-workflowexecution.yaml")];
const NAMESPACE = "kubernaut-system";

type Controller = "orchestrator" | "aianalysis" | "workflowexecution" | "event-exporter";

/** A behaviour rule (standins/README.md): the first match decides; the signal's label wins over all. */
export interface BehaviourRule {
  signalName?: string;
  signalNamePattern?: string;
  labels?: Record<string, string>;
  behaviour: string;
}

/**
 * Writes a controller's rules into the ConfigMap standin-behaviour (its own key,
 * applied server-side under its own field manager, so the two controllers'
 * rules never overwrite each other). The running stand-in reads them at its next decision.
 */
export async function setBehaviourRules(
  kube: KubeCluster,
  controller: "aianalysis" | "workflowexecution",
  rules: BehaviourRule[],
): Promise<void> {
  await kube.applyYaml(
    stringify({
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: "standin-behaviour", namespace: NAMESPACE },
      data: { [`${controller}.yaml`]: stringify(rules) },
    }),
    { fieldManager: `standin-${controller}-rules` },
  );
}

/**
 * One stand-in controller as its own process, with its own ServiceAccount token
 * and the least-privilege RBAC of standins/deploy/rbac.yaml:
 *
 *   const orchestrator = await new OrchestratorStandIn(kube).withPhaseTimeout("20s").start();
 *
 * Waits for /healthz (its informers have listed).
 */
abstract class StandIn {
  protected flags: string[] = [];

  constructor(
    protected readonly kube: StartedKubeApiServer,
    private readonly controller: Controller,
  ) {}

  async start(): Promise<StartedStandIn> {
    await this.kube.applyYaml(join(DEPLOY, "rbac.yaml"));
    await this.prepare();
    const dir = scratchDir(`standin-${this.controller}`);
    const kubeconfig = await this.kube.serviceAccountKubeconfig(
      NAMESPACE,
      `standin-${this.controller}`,
      join(dir, "kubeconfig"),
    );
    const listen = `127.0.0.1:${await freePort()}`;
    const proc = new ManagedProcess({
      name: `standin-${this.controller}-${listen.split(":").pop()}`,
      command: process.execPath,
      args: ["--import", "tsx", MAIN, this.controller, "--kubeconfig", kubeconfig, "--listen", listen, ...this.flags],
      cwd: repoRoot,
      ready: () => httpReady(`http://${listen}/healthz`),
      readyTimeoutMs: 30_000,
    });
    try {
      await proc.startIn(dir);
    } catch (err) {
      rmSync(dir, { recursive: true, force: true });
      throw err;
    }
    return new StartedStandIn(proc, `http://${listen}`, dir);
  }

  /** What must exist before the process starts. */
  protected async prepare(): Promise<void> {}

  protected flag(name: string, value: string): this {
    this.flags.push(`--${name}`, value);
    return this;
  }
}

/** Remediation Orchestrator: drives overallPhase and creates the children. */
export class OrchestratorStandIn extends StandIn {
  constructor(kube: StartedKubeApiServer) {
    super(kube, "orchestrator");
  }
  /** Longest time a request may stay in one phase before it is TimedOut (default 5m). */
  withPhaseTimeout(duration: string): this {
    return this.flag("phase-timeout", duration);
  }
}

abstract class ChildStandIn extends StandIn {
  private rules: BehaviourRule[] | undefined;

  constructor(
    kube: StartedKubeApiServer,
    private readonly child: "aianalysis" | "workflowexecution",
  ) {
    super(kube, child);
  }
  /** Time in the working phase before the behaviour's end (default 500ms). */
  withStep(duration: string): this {
    return this.flag("step", duration);
  }
  /** Rules written to the ConfigMap standin-behaviour before the start. */
  withBehaviour(rules: BehaviourRule[]): this {
    this.rules = rules;
    return this;
  }
  protected override async prepare(): Promise<void> {
    if (this.rules) await setBehaviourRules(this.kube, this.child, this.rules);
  }
}

/** AI Analysis: succeed, fail, stall or review, by rule. */
export class AIAnalysisStandIn extends ChildStandIn {
  constructor(kube: StartedKubeApiServer) {
    super(kube, "aianalysis");
  }
}

/** Workflow Execution: succeed, fail, stall or block, by rule. */
export class WorkflowExecutionStandIn extends ChildStandIn {
  constructor(kube: StartedKubeApiServer) {
    super(kube, "workflowexecution");
  }
}

/** Forwards Warning events from the API server to the gateway. */
export class EventExporterStandIn extends StandIn {
  constructor(kube: StartedKubeApiServer) {
    super(kube, "event-exporter");
  }
  withGateway(url: string, tokenFile?: string): this {
    this.flag("gateway-url", url);
    return tokenFile ? this.flag("gateway-token-file", tokenFile) : this;
  }
}

export class StartedStandIn {
  constructor(
    readonly process: ManagedProcess,
    private readonly url: string,
    private readonly dir: string,
  ) {}

  /** Base URL of /healthz and /metrics. */
  getUrl(): string {
    return this.url;
  }

  async stop(): Promise<void> {
    await this.process.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
