// The stand-ins' cluster manifests (kustomize → a real kube-apiserver, server-side
// dry-run) and their bundle in the gateway's image, built as the Dockerfile builds it
// and run against a real API server under the shipped RBAC.
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { rmSync } from "node:fs";
import { join } from "node:path";
import type { V1Deployment } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseAllDocuments, stringify } from "yaml";
import {
  KubeApiServer,
  type KubeObject,
  REMEDIATION_REQUEST_CRD,
  type StartedKubeApiServer,
} from "../../harness/src/components/kube-api.js";
import { bundleAsTheImage } from "../../harness/src/image-bundle.js";
import { binary, repoRoot, scratchDir } from "../../harness/src/paths.js";
import { eventually } from "../../harness/src/poll.js";
import { freePort } from "../../harness/src/ports.js";
import { httpReady } from "../../harness/src/probes.js";
import { ManagedProcess } from "../../harness/src/supervisor.js";

const CONTROLLERS = ["orchestrator", "aianalysis", "workflowexecution", "event-exporter"];

function build(dir: string): KubeObject[] {
  const text = execFileSync(binary("kustomize"), ["build", dir], { encoding: "utf8" });
  return parseAllDocuments(text).map((d) => d.toJS() as KubeObject);
}

describe("standins/deploy and the image's stand-in bundle", () => {
  let kube: StartedKubeApiServer;
  let dir: string;
  let orchestrator: ManagedProcess | undefined;
  const rendered = build(join(repoRoot, "standins", "deploy"));

  beforeAll(async () => {
    dir = scratchDir("standin-bundle");
    kube = await new KubeApiServer().withCrds([REMEDIATION_REQUEST_CRD]).start();
    await kube.createNamespace("kubernaut-system");
  });
  afterAll(async () => {
    await orchestrator?.stop();
    await kube?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("the API server admits every object (server-side dry-run)", async () => {
    const applied = await kube.applyYaml(rendered.map((o) => stringify(o)).join("---\n"), { dryRun: "All" });
    expect(applied.map((o) => o.kind).sort()).toEqual(rendered.map((o) => o.kind).sort());
  });

  it("runs each controller from the gateway's image under its own ServiceAccount", () => {
    const gatewayImage = (
      build(join(repoRoot, "gateway", "deploy", "base")).find((o) => o.kind === "Deployment") as unknown as V1Deployment
    ).spec?.template.spec?.containers[0]?.image;
    const deployments = rendered.filter((o) => o.kind === "Deployment") as unknown as V1Deployment[];
    const accounts = rendered.filter((o) => o.kind === "ServiceAccount").map((o) => o.metadata.name);
    expect(deployments.map((d) => d.spec?.template.spec?.containers[0]?.args?.[0]).sort()).toEqual(
      [...CONTROLLERS].sort(),
    );
    for (const d of deployments) {
      const pod = d.spec?.template.spec;
      const container = pod?.containers[0];
      expect(container?.image, d.metadata?.name).toBe(gatewayImage);
      expect(container?.command).toEqual(["node", "--enable-source-maps", "/app/standin.js"]);
      expect(accounts).toContain(pod?.serviceAccountName);
      expect(pod?.serviceAccountName).toBe(`standin-${container?.args?.[0]}`);
    }
  });

  it("the Dockerfile's stand-in bundle drives a request as the orchestrator, with the shipped RBAC", async () => {
    const bundle = bundleAsTheImage("standin.js", dir);

    await kube.applyYaml(
      rendered
        .filter((o) => o.kind !== "Deployment")
        .map((o) => stringify(o))
        .join("---\n"),
    );
    const kubeconfig = await kube.serviceAccountKubeconfig(
      "kubernaut-system",
      "standin-orchestrator",
      join(dir, "kubeconfig"),
    );
    const listen = `127.0.0.1:${await freePort()}`;
    orchestrator = new ManagedProcess({
      name: "standin-bundle",
      command: process.execPath,
      args: [bundle, "orchestrator", "--kubeconfig", kubeconfig, "--listen", listen],
      ready: () => httpReady(`http://${listen}/healthz`),
    });
    await orchestrator.startIn(dir);

    await kube.createNamespace("bundle-check");
    const fingerprint = createHash("sha256").update("DiskFull:bundle-check:Pod:db-0").digest("hex");
    const custom = kube.clients().custom;
    const rr = { group: "kubernaut.ai", version: "v1alpha1", plural: "remediationrequests", namespace: "bundle-check" };
    await custom.createNamespacedCustomObject({
      ...rr,
      body: {
        apiVersion: "kubernaut.ai/v1alpha1",
        kind: "RemediationRequest",
        metadata: { name: "rr-bundle" },
        spec: {
          signalFingerprint: fingerprint,
          signalName: "DiskFull",
          severity: "warning",
          environment: "staging",
          priority: "P2",
          signalType: "prometheus-alert",
          signalSource: "alertmanager",
          targetType: "kubernetes",
          targetResource: { kind: "Pod", name: "db-0", namespace: "bundle-check" },
          firingTime: "2026-01-01T10:00:00Z",
          receivedTime: "2026-01-01T10:00:01Z",
        },
      },
    });
    // No AI Analysis runs here: the request waits in Analyzing, with its child created.
    await eventually(
      async () => {
        const got = (await custom.getNamespacedCustomObject({ ...rr, name: "rr-bundle" })) as {
          status?: { overallPhase?: string };
        };
        expect(got.status?.overallPhase).toBe("Analyzing");
        await custom.getNamespacedCustomObject({ ...rr, plural: "aianalyses", name: "rr-bundle-analysis" });
      },
      { what: "the bundled orchestrator to take rr-bundle to Analyzing", timeoutMs: 20_000 },
    );
  });
});
