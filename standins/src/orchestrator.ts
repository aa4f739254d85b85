// The Remediation Orchestrator stand-in: takes each RemediationRequest through
// overallPhase Pending → Processing → Analyzing (an AIAnalysis child) →
// Executing (a WorkflowExecution child) → Completed, or to Failed, TimedOut or
// Blocked as the children end; a manual review ends it Completed with outcome
// ManualReviewRequired. Each phase is one status write, so a watch sees them in order.
import { CustomObjectsApi, type KubeConfig } from "@kubernetes/client-node";
import {
  GROUP,
  type KubernautObject,
  kindInformer,
  log,
  type Metrics,
  nowIso,
  type Ref,
  refOf,
  statusCode,
  VERSION,
  WorkQueue,
  writeStatus,
} from "./runtime.js";

const RR = "remediationrequests";
const AI = "aianalyses";
const WFE = "workflowexecutions";
const DONE = new Set(["Completed", "Failed", "TimedOut", "Skipped", "Cancelled", "Blocked"]);

export interface OrchestratorOptions {
  /** How long a request may stay in one phase before it is TimedOut. */
  phaseTimeoutMs: number;
}

export function startOrchestrator(
  kc: KubeConfig,
  opts: OrchestratorOptions,
  metrics: Metrics,
): { synced: () => boolean; stop: () => Promise<void> } {
  const api = kc.makeApiClient(CustomObjectsApi);
  /** When this process first saw each request in its current phase (a restart starts the clocks again). */
  const since = new Map<string, { phase: string; at: number }>();

  const createChild = async (rr: KubernautObject, plural: string, kind: string, name: string, spec: object) => {
    const body = {
      apiVersion: `${GROUP}/${VERSION}`,
      kind,
      metadata: {
        name,
        namespace: rr.metadata.namespace,
        labels: { "kubernaut.ai/remediation-request": rr.metadata.name },
        ownerReferences: [
          {
            apiVersion: `${GROUP}/${VERSION}`,
            kind: "RemediationRequest",
            name: rr.metadata.name,
            uid: rr.metadata.uid,
            controller: true,
          },
        ],
      },
      spec: {
        remediationRequestRef: refOf(rr),
        signalFingerprint: rr.spec.signalFingerprint,
        signalName: rr.spec.signalName,
        ...(rr.spec.signalLabels ? { signalLabels: rr.spec.signalLabels } : {}),
        ...spec,
      },
    };
    try {
      await api.createNamespacedCustomObject({
        group: GROUP,
        version: VERSION,
        namespace: rr.metadata.namespace,
        plural,
        body,
      });
    } catch (err) {
      if (statusCode(err) !== 409) throw err; // 409: made by an earlier attempt
    }
  };

  /** Moves `ref` from `from` to the status `to`; nothing when someone moved it first. */
  const advance = (ref: Ref, from: string | undefined, to: Record<string, unknown>) =>
    writeStatus(kc, RR, ref, metrics, (current) => {
      const phase = current.status?.overallPhase as string | undefined;
      const same = from === undefined ? phase === undefined || phase === "Pending" : phase === from;
      return same ? to : undefined;
    });

  const finished = (phase: string, extra: Record<string, unknown>) => ({
    overallPhase: phase,
    completedAt: nowIso(),
    ...extra,
  });

  const reconcile = async (ref: Ref): Promise<void> => {
    const rr = requests.cache.get(ref.name, ref.namespace);
    if (!rr) return;
    const phase = rr.status?.overallPhase as string | undefined;
    if (phase !== undefined && DONE.has(phase)) {
      since.delete(`${ref.namespace}/${ref.name}`);
      return;
    }
    const aiName = `${ref.name}-analysis`;
    const wfeName = `${ref.name}-workflow`;
    if (phase === undefined || phase === "Pending") {
      await advance(ref, undefined, { overallPhase: "Processing", startTime: nowIso() });
      return;
    }
    if (phase === "Processing") {
      await createChild(rr, AI, "AIAnalysis", aiName, {});
      await advance(ref, "Processing", {
        overallPhase: "Analyzing",
        aiAnalysisRef: { name: aiName, namespace: ref.namespace },
      });
      return;
    }
    if (phase === "Analyzing") {
      const ai = analyses.cache.get(aiName, ref.namespace);
      const aiPhase = ai?.status?.phase;
      if (aiPhase === "Completed" && ai?.status?.requiresManualReview === true) {
        await advance(
          ref,
          phase,
          finished("Completed", {
            outcome: "ManualReviewRequired",
            requiresManualReview: true,
            message: `AIAnalysis ${aiName}: ${ai.status?.message ?? "manual review required"}`,
          }),
        );
        return;
      }
      if (aiPhase === "Completed") {
        await createChild(rr, WFE, "WorkflowExecution", wfeName, {
          workflowId: String(ai?.status?.selectedWorkflow ?? "restart-pod"),
          aiAnalysisRef: { name: aiName },
        });
        await advance(ref, phase, {
          overallPhase: "Executing",
          workflowExecutionRef: { name: wfeName, namespace: ref.namespace },
        });
        return;
      }
      if (aiPhase === "Failed") {
        await advance(
          ref,
          phase,
          finished("Failed", { message: `AIAnalysis ${aiName} failed: ${ai?.status?.message ?? ""}` }),
        );
        return;
      }
    }
    if (phase === "Executing") {
      const wfe = executions.cache.get(wfeName, ref.namespace);
      const wfePhase = wfe?.status?.phase;
      if (wfePhase === "Completed") {
        await advance(
          ref,
          phase,
          finished("Completed", {
            outcome: "Remediated",
            requiresManualReview: false,
            message: `WorkflowExecution ${wfeName} completed`,
          }),
        );
        return;
      }
      if (wfePhase === "Failed") {
        await advance(
          ref,
          phase,
          finished("Failed", { message: `WorkflowExecution ${wfeName} failed: ${wfe?.status?.message ?? ""}` }),
        );
        return;
      }
      if (wfePhase === "Blocked") {
        await advance(ref, phase, {
          overallPhase: "Blocked",
          message: `WorkflowExecution ${wfeName}: ${wfe?.status?.message ?? "blocked"}`,
        });
        return;
      }
    }
    // Waiting on a child (or a phase this stand-in does not drive): the phase deadline.
    const key = `${ref.namespace}/${ref.name}`;
    const entry = since.get(key);
    const at = entry?.phase === phase ? entry.at : Date.now();
    since.set(key, { phase, at });
    const left = at + opts.phaseTimeoutMs - Date.now();
    if (left > 0) {
      queue.after(ref, left);
      return;
    }
    await advance(
      ref,
      phase,
      finished("TimedOut", { message: `phase ${phase} lasted longer than ${opts.phaseTimeoutMs} ms` }),
    );
    log("info", `RemediationRequest ${key}: TimedOut in ${phase}`);
  };

  const queue = new WorkQueue(RR, metrics, reconcile);
  const requests = kindInformer(kc, RR, (rr) => queue.add(refOf(rr)));
  // A child's change is its request's business.
  const owner = (child: KubernautObject) => queue.add(child.spec.remediationRequestRef as Ref);
  const analyses = kindInformer(kc, AI, owner);
  const executions = kindInformer(kc, WFE, owner);
  return {
    synced: () => requests.synced() && analyses.synced() && executions.synced(),
    stop: async () => {
      queue.stop();
      await Promise.all([requests.stop(), analyses.stop(), executions.stop()]);
    },
  };
}
