// How AI Analysis and Workflow Execution decide what a child does (standins/README.md):
// 1. the signal's label `kubernaut_standin_<controller>` (e.g. kubernaut_standin_aianalysis: review);
// 2. else the first matching rule under the key `<controller>.yaml` of the ConfigMap
//    standin-behaviour in the stand-ins' namespace (read at each decision, so edits apply at once);
// 3. else succeed.
import { CoreV1Api, type KubeConfig } from "@kubernetes/client-node";
import { parse } from "yaml";
import { log, statusCode } from "./runtime.js";

export const BEHAVIOUR_CONFIGMAP = "standin-behaviour";

export interface Rule {
  /** The signal name equals this. */
  signalName?: string;
  /** The signal name matches this regular expression. */
  signalNamePattern?: string;
  /** Every one of these signal labels has this value. */
  labels?: Record<string, string>;
  behaviour: string;
}

export interface Signal {
  signalName: string;
  signalLabels?: Record<string, string>;
}

/** Checks a rule list as written in the ConfigMap; throws naming the rule and field that is wrong. */
export function parseRules(text: string, allowed: readonly string[], where: string): Rule[] {
  const value = parse(text) as unknown;
  if (value === null || value === undefined) return [];
  if (!Array.isArray(value)) throw new Error(`${where}: expected a list of rules`);
  return value.map((raw, i) => {
    const rule = raw as Partial<Rule> & Record<string, unknown>;
    const at = `${where}: rule ${i + 1}`;
    if (typeof rule !== "object" || rule === null) throw new Error(`${at}: expected a mapping`);
    for (const key of Object.keys(rule))
      if (!["signalName", "signalNamePattern", "labels", "behaviour"].includes(key))
        throw new Error(`${at}: unknown field ${key}`);
    if (typeof rule.behaviour !== "string" || !allowed.includes(rule.behaviour))
      throw new Error(`${at}: behaviour must be one of ${allowed.join(", ")} (got ${JSON.stringify(rule.behaviour)})`);
    if (rule.signalNamePattern !== undefined) {
      try {
        new RegExp(rule.signalNamePattern);
      } catch (err) {
        throw new Error(`${at}: signalNamePattern is not a regular expression: ${(err as Error).message}`);
      }
    }
    if (rule.labels !== undefined && (typeof rule.labels !== "object" || Array.isArray(rule.labels)))
      throw new Error(`${at}: labels must be a mapping of label to value`);
    return rule as Rule;
  });
}

export function matches(rule: Rule, signal: Signal): boolean {
  if (rule.signalName !== undefined && rule.signalName !== signal.signalName) return false;
  if (rule.signalNamePattern !== undefined && !new RegExp(rule.signalNamePattern).test(signal.signalName)) return false;
  return Object.entries(rule.labels ?? {}).every(([k, v]) => signal.signalLabels?.[k] === v);
}

/** The behaviour source of one controller (`aianalysis`, `workflowexecution`). */
export class Behaviours {
  private readonly core;

  constructor(
    kc: KubeConfig,
    private readonly controller: string,
    private readonly namespace: string,
    private readonly allowed: readonly string[],
  ) {
    this.core = kc.makeApiClient(CoreV1Api);
  }

  async decide(signal: Signal): Promise<{ behaviour: string; why: string }> {
    const label = `kubernaut_standin_${this.controller}`;
    const labelled = signal.signalLabels?.[label];
    if (labelled !== undefined) {
      if (this.allowed.includes(labelled)) return { behaviour: labelled, why: `signal label ${label}` };
      log("warn", `signal label ${label}=${labelled} is not one of ${this.allowed.join(", ")}; ignored`);
    }
    const rules = await this.rules();
    const i = rules.findIndex((r) => matches(r, signal));
    const rule = rules[i];
    if (rule) return { behaviour: rule.behaviour, why: `rule ${i + 1} of ${BEHAVIOUR_CONFIGMAP}` };
    return { behaviour: "succeed", why: "default" };
  }

  private async rules(): Promise<Rule[]> {
    const where = `ConfigMap ${this.namespace}/${BEHAVIOUR_CONFIGMAP} key ${this.controller}.yaml`;
    let text: string | undefined;
    try {
      const cm = await this.core.readNamespacedConfigMap({ namespace: this.namespace, name: BEHAVIOUR_CONFIGMAP });
      text = cm.data?.[`${this.controller}.yaml`];
    } catch (err) {
      if (statusCode(err) === 404) return [];
      throw err;
    }
    if (text === undefined) return [];
    try {
      return parseRules(text, this.allowed, where);
    } catch (err) {
      // A broken rule list must be seen, not silently read as "succeed everything".
      log("error", (err as Error).message);
      throw err;
    }
  }
}
