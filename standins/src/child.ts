// AI Analysis and Workflow Execution: each advances its own kind. A new object
// goes to its working phase at once, and after one step to the end its
// behaviour names (behaviour.ts): succeed, fail, stall (stays working until the
// orchestrator's phase deadline), review (AI Analysis: completed, manual
// review required) or block (Workflow Execution: blocked, waiting for a person).
import type { KubeConfig } from "@kubernetes/client-node";
import { Behaviours } from "./behaviour.js";
import {
  type KubernautObject,
  kindInformer,
  log,
  type Metrics,
  nowIso,
  refOf,
  WorkQueue,
  writeStatus,
} from "./runtime.js";

export interface ChildKind {
  /** Controller name: the label suffix and the ConfigMap key. */
  controller: "aianalysis" | "workflowexecution";
  plural: string;
  working: string;
  behaviours: readonly string[];
  /** The status the behaviour ends in (undefined: stays working). */
  end(behaviour: string, why: string): Record<string, unknown> | undefined;
}

export const AI_ANALYSIS: ChildKind = {
  controller: "aianalysis",
  plural: "aianalyses",
  working: "Investigating",
  behaviours: ["succeed", "fail", "stall", "review"],
  end: (behaviour, why) => {
    const done = { completedAt: nowIso() };
    if (behaviour === "succeed")
      return {
        ...done,
        phase: "Completed",
        requiresManualReview: false,
        selectedWorkflow: "restart-pod",
        message: `analysis complete (${why})`,
      };
    if (behaviour === "review")
      return {
        ...done,
        phase: "Completed",
        requiresManualReview: true,
        message: `low confidence: a person must review (${why})`,
      };
    if (behaviour === "fail") return { ...done, phase: "Failed", message: `analysis failed (${why})` };
    return undefined;
  },
};

export const WORKFLOW_EXECUTION: ChildKind = {
  controller: "workflowexecution",
  plural: "workflowexecutions",
  working: "Running",
  behaviours: ["succeed", "fail", "stall", "block"],
  end: (behaviour, why) => {
    const done = { completedAt: nowIso() };
    if (behaviour === "succeed") return { ...done, phase: "Completed", message: `workflow succeeded (${why})` };
    if (behaviour === "fail") return { ...done, phase: "Failed", message: `workflow step failed (${why})` };
    if (behaviour === "block") return { phase: "Blocked", message: `blocked: waiting for a person (${why})` };
    return undefined;
  },
};

const TERMINAL = new Set(["Completed", "Failed", "Blocked"]);

export function startChildController(
  kc: KubeConfig,
  kind: ChildKind,
  opts: { namespace: string; stepMs: number },
  metrics: Metrics,
): { synced: () => boolean; stop: () => Promise<void> } {
  const behaviours = new Behaviours(kc, kind.controller, opts.namespace, kind.behaviours);
  const queue: WorkQueue = new WorkQueue(kind.plural, metrics, async (ref): Promise<void> => {
    const obj = await writeStatus(kc, kind.plural, ref, metrics, (current) => {
      const phase = current.status?.phase as string | undefined;
      return phase === undefined || phase === "Pending" ? { phase: kind.working, startedAt: nowIso() } : undefined;
    });
    const phase = obj?.status?.phase as string | undefined;
    if (!obj || phase !== kind.working) return;
    const startedAt = Date.parse(String(obj.status?.startedAt ?? "")) || Date.now();
    const wait = startedAt + opts.stepMs - Date.now();
    if (wait > 0) return queue.after(ref, wait);
    const { behaviour, why } = await behaviours.decide(obj.spec as { signalName: string });
    const end = kind.end(behaviour, why);
    if (!end) return; // stall
    await writeStatus(kc, kind.plural, ref, metrics, (current) =>
      current.status?.phase === kind.working ? end : undefined,
    );
    log("info", `${kind.plural} ${ref.namespace}/${ref.name}: ${end.phase}`, { behaviour, why });
  });
  const informer = kindInformer(kc, kind.plural, (obj: KubernautObject) => {
    if (!TERMINAL.has(String(obj.status?.phase))) queue.add(refOf(obj));
  });
  return {
    synced: informer.synced,
    stop: async () => {
      queue.stop();
      await informer.stop();
    },
  };
}
