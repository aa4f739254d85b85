// The stand-in controllers against a real API server: phases, children and
// owner references as stored, behaviour by rule and by label, the phase
// deadline, least privilege, and flags refused before anything starts.
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { CoreV1Api, CustomObjectsApi, KubeConfig, PatchStrategy, setHeaderOptions } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  KubeApiServer,
  REMEDIATION_REQUEST_CRD,
  type StartedKubeApiServer,
} from "../../harness/src/components/kube-api.js";
import {
  AIAnalysisStandIn,
  OrchestratorStandIn,
  STANDIN_CRDS,
  type StartedStandIn,
  setBehaviourRules,
  WorkflowExecutionStandIn,
} from "../../harness/src/components/standins.js";
import { repoRoot } from "../../harness/src/paths.js";
import { eventually } from "../../harness/src/poll.js";

const namespace = "standins-test";
const group = { group: "kubernaut.ai", version: "v1alpha1" } as const;

interface Obj {
  metadata: {
    name: string;
    uid: string;
    ownerReferences?: { kind: string; name: string; uid: string; controller?: boolean }[];
  };
  spec: Record<string, unknown>;
  status?: Record<string, unknown>;
}

function remediationRequest(name: string, signalName: string, labels: Record<string, string> = {}) {
  const fingerprint = createHash("sha256").update(`${signalName}:${namespace}:Pod:${name}`).digest("hex");
  return {
    apiVersion: "kubernaut.ai/v1alpha1",
    kind: "RemediationRequest",
    metadata: { name, namespace },
    spec: {
      signalFingerprint: fingerprint,
      signalName,
      severity: "critical",
      environment: "production",
      priority: "P0",
      signalType: "prometheus-alert",
      signalSource: "alertmanager",
      targetType: "kubernetes",
      targetResource: { kind: "Pod", name: "api-0", namespace },
      firingTime: "2026-01-01T10:00:00Z",
      receivedTime: "2026-01-01T10:00:01Z",
      signalLabels: { alertname: signalName, ...labels },
    },
  };
}

describe("stand-in controllers", () => {
  let kube: StartedKubeApiServer;
  let custom: CustomObjectsApi;
  const standins: StartedStandIn[] = [];

  beforeAll(async () => {
    kube = await new KubeApiServer().withCrds([REMEDIATION_REQUEST_CRD, ...STANDIN_CRDS]).start();
    await kube.createNamespace("kubernaut-system");
    await kube.createNamespace(namespace);
    custom = kube.clients().custom;
    standins.push(
      ...(await Promise.all([
        new OrchestratorStandIn(kube).withPhaseTimeout("3s").start(),
        new AIAnalysisStandIn(kube)
          .withStep("100ms")
          .withBehaviour([
            { signalName: "NeedsAPerson", behaviour: "review" },
            { signalNamePattern: "^Broken", behaviour: "fail" },
          ])
          .start(),
        new WorkflowExecutionStandIn(kube).withStep("100ms").start(),
      ])),
    );
  });
  afterAll(async () => {
    await Promise.allSettled(standins.map((s) => s.stop()));
    await kube?.stop();
  });

  const create = (body: object) =>
    custom.createNamespacedCustomObject({ ...group, plural: "remediationrequests", namespace, body });
  const get = async (plural: string, name: string) =>
    (await custom.getNamespacedCustomObject({ ...group, plural, namespace, name })) as Obj;
  const reaches = (name: string, phase: string) =>
    eventually(
      async () => {
        const rr = await get("remediationrequests", name);
        return rr.status?.overallPhase === phase
          ? rr
          : Promise.reject(new Error(`status ${JSON.stringify(rr.status)}`));
      },
      { what: `${name} to reach ${phase}`, timeoutMs: 20_000 },
    );

  it("takes a request to Completed, outcome Remediated, through both children owned by it", async () => {
    await create(remediationRequest("rr-happy", "HighMemory"));
    const rr = await reaches("rr-happy", "Completed");
    expect(rr.status).toMatchObject({
      outcome: "Remediated",
      requiresManualReview: false,
      aiAnalysisRef: { name: "rr-happy-analysis", namespace },
      workflowExecutionRef: { name: "rr-happy-workflow", namespace },
    });
    expect(Date.parse(String(rr.status?.completedAt))).toBeGreaterThanOrEqual(Date.parse(String(rr.status?.startTime)));
    for (const [plural, name] of [
      ["aianalyses", "rr-happy-analysis"],
      ["workflowexecutions", "rr-happy-workflow"],
    ] as const) {
      const child = await get(plural, name);
      expect(child.status?.phase, plural).toBe("Completed");
      expect(child.metadata.ownerReferences).toEqual([
        expect.objectContaining({
          kind: "RemediationRequest",
          name: "rr-happy",
          uid: rr.metadata.uid,
          controller: true,
        }),
      ]);
    }
  });

  it("ends in manual review when a rule of the ConfigMap says so", async () => {
    await create(remediationRequest("rr-review", "NeedsAPerson"));
    const rr = await reaches("rr-review", "Completed");
    expect(rr.status).toMatchObject({ outcome: "ManualReviewRequired", requiresManualReview: true });
    expect(rr.status?.workflowExecutionRef).toBeUndefined();
  });

  it("fails the request when its analysis fails (pattern rule)", async () => {
    await create(remediationRequest("rr-broken", "BrokenThing"));
    const rr = await reaches("rr-broken", "Failed");
    expect(String(rr.status?.message)).toContain("rr-broken-analysis failed");
  });

  it("lets the signal's label win over the rules, and times out a stalled workflow", async () => {
    await create(
      remediationRequest("rr-stall", "NeedsAPerson", {
        kubernaut_standin_aianalysis: "succeed",
        kubernaut_standin_workflowexecution: "stall",
      }),
    );
    const rr = await reaches("rr-stall", "TimedOut");
    expect(String(rr.status?.message)).toContain("phase Executing");
    expect((await get("workflowexecutions", "rr-stall-workflow")).status?.phase).toBe("Running");
  });

  it("blocks the request when the workflow is blocked, and reads rule changes at once", async () => {
    await setBehaviourRules(kube, "workflowexecution", [{ labels: { team: "db" }, behaviour: "block" }]);
    await create(remediationRequest("rr-blocked", "DiskFull", { team: "db" }));
    const rr = await reaches("rr-blocked", "Blocked");
    expect(String(rr.status?.message)).toContain("waiting for a person");
  });

  it("keeps the gateway's status fields: its writes are merge patches of its own fields", async () => {
    await create(remediationRequest("rr-counted", "HighLatency"));
    const deduplication = {
      occurrenceCount: 3,
      firstSeenAt: "2026-01-01T10:00:01Z",
      lastSeenAt: "2026-01-01T10:00:09Z",
    };
    await custom.patchNamespacedCustomObjectStatus(
      { ...group, plural: "remediationrequests", namespace, name: "rr-counted", body: { status: { deduplication } } },
      setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
    );
    const rr = await reaches("rr-counted", "Completed");
    expect(rr.status).toMatchObject({ outcome: "Remediated", deduplication });
  });

  it("runs with only its own permissions: the orchestrator's token reads requests, not Secrets", async () => {
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [
        { name: "harness", server: kube.getServerUrl(), caData: Buffer.from(kube.getCaCert()).toString("base64") },
      ],
      users: [
        { name: "orchestrator", token: await kube.serviceAccountToken("kubernaut-system", "standin-orchestrator") },
      ],
      contexts: [{ name: "orchestrator", cluster: "harness", user: "orchestrator" }],
      currentContext: "orchestrator",
    });
    const asOrchestrator = kc.makeApiClient(CustomObjectsApi);
    await expect(
      asOrchestrator.listClusterCustomObject({ ...group, plural: "remediationrequests" }),
    ).resolves.toBeTruthy();
    await expect(kc.makeApiClient(CoreV1Api).listNamespacedSecret({ namespace })).rejects.toMatchObject({ code: 403 });
    await expect(
      asOrchestrator.deleteNamespacedCustomObject({
        ...group,
        plural: "remediationrequests",
        namespace,
        name: "rr-happy",
      }),
    ).rejects.toMatchObject({ code: 403 });
  });
});

describe("standin flags", () => {
  const main = join(repoRoot, "standins", "src", "main.ts");
  const run = (...args: string[]) =>
    spawnSync(process.execPath, ["--import", "tsx", main, ...args], {
      cwd: repoRoot,
      encoding: "utf8",
      timeout: 30_000,
    });

  it.each([
    [["orchestrater"], "the first argument names the controller"],
    [["orchestrator", "--phase-timeout", "soon"], "--phase-timeout: expected a duration"],
    [["aianalysis", "--step", "0s"], "--step: must be more than 0"],
    [["event-exporter"], "--gateway-url: required"],
    [["event-exporter", "--gateway-url", "ftp://x"], "--gateway-url: expected an http(s) URL"],
    [["orchestrator", "--listen", "nowhere"], "--listen: expected host:port"],
    [["orchestrator", "--bogus", "1"], "Unknown option '--bogus'"],
    [["orchestrator", "--kubeconfig", "/nonexistent/kubeconfig"], "--kubeconfig /nonexistent/kubeconfig"],
  ])("refuses %j naming the flag", (args, message) => {
    const res = run(...args);
    expect(res.status).toBe(2);
    expect(res.stderr).toContain(message);
    expect(res.stderr).not.toMatch(/\n\s+at /);
  });
});
