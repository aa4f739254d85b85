import { createHash } from "node:crypto";
import { CustomObjectsApi, KubeConfig } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  KubeApiServer,
  type KubeObject,
  REMEDIATION_REQUEST_CRD,
  type StartedKubeApiServer,
} from "../src/components/kube-api.js";
import { eventually } from "../src/poll.js";

const rr = { group: "kubernaut.ai", version: "v1alpha1", plural: "remediationrequests" } as const;
const namespace = "kube-api-test";

function remediationRequest(name: string, spec: Record<string, unknown> = {}): KubeObject {
  const fingerprint = createHash("sha256").update(`HighMemory:${namespace}:Pod:${name}`).digest("hex");
  return {
    apiVersion: "kubernaut.ai/v1alpha1",
    kind: "RemediationRequest",
    metadata: { name, namespace },
    spec: {
      signalFingerprint: fingerprint,
      signalName: "HighMemory",
      severity: "critical",
      environment: "production",
      priority: "P0",
      signalType: "prometheus-alert",
      signalSource: "alertmanager",
      targetType: "kubernetes",
      targetResource: { kind: "Pod", name: "api-0", namespace },
      firingTime: "2026-01-01T10:00:00Z",
      receivedTime: "2026-01-01T10:00:01Z",
      signalLabels: { alertname: "HighMemory", pod: "api-0" },
      ...spec,
    },
  };
}

/** The HTTP status and server message of a rejected client-node call. */
async function rejection(call: Promise<unknown>): Promise<{ code: number; message: string }> {
  try {
    await call;
  } catch (err) {
    const { code, body } = err as { code?: unknown; body?: unknown };
    const message = body === undefined ? String(err) : typeof body === "string" ? body : JSON.stringify(body);
    return { code: typeof code === "number" ? code : 0, message };
  }
  throw new Error("the API server accepted a call it should have rejected");
}

describe("KubeApiServer (real etcd + kube-apiserver)", () => {
  let kube: StartedKubeApiServer;
  let custom: CustomObjectsApi;

  /** A client for the same server authenticating as someone else (or as nobody). */
  function customApiAs(token?: string): CustomObjectsApi {
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: "c", server: kube.getServerUrl(), caData: Buffer.from(kube.getCaCert()).toString("base64") }],
      users: [token ? { name: "u", token } : { name: "u" }],
      contexts: [{ name: "ctx", cluster: "c", user: "u" }],
      currentContext: "ctx",
    });
    return kc.makeApiClient(CustomObjectsApi);
  }

  beforeAll(async () => {
    const started = Date.now();
    kube = await new KubeApiServer().withCrds([REMEDIATION_REQUEST_CRD]).start();
    console.log(`KubeApiServer.start() (etcd + kube-apiserver + CRD established): ${Date.now() - started} ms`);
    await kube.createNamespace(namespace, { environment: "production" });
    custom = kube.clients().custom;
  });
  afterAll(async () => {
    await kube?.stop();
  });

  it("stores a valid RemediationRequest and reads it back", async () => {
    const body = remediationRequest("rr-valid");
    await custom.createNamespacedCustomObject({ ...rr, namespace, body });
    const read = (await custom.getNamespacedCustomObject({ ...rr, namespace, name: "rr-valid" })) as KubeObject;
    expect(read.spec).toEqual(body.spec);
    expect(read.metadata.uid).toBeTruthy();
  });

  it.each([
    ["a fingerprint that is not 64 hex", { signalFingerprint: "ABC123" }, "spec.signalFingerprint"],
    ["a severity outside the enum", { severity: "urgent" }, "spec.severity"],
    ["a missing required field", { signalName: undefined }, "spec.signalName"],
    ["a timestamp that is not date-time", { firingTime: "yesterday" }, "spec.firingTime"],
    ["a negative storm count", { isStorm: true, stormAlertCount: -1 }, "spec.stormAlertCount"],
  ])("rejects %s with 422 naming the field", async (_case, spec, field) => {
    const name = `rr-bad-${field.replace(/\W/g, "").toLowerCase()}`;
    const body = remediationRequest(name, spec);
    const { code, message } = await rejection(custom.createNamespacedCustomObject({ ...rr, namespace, body }));
    expect(code).toBe(422);
    expect(message).toContain(field);
    expect(await rejection(custom.getNamespacedCustomObject({ ...rr, namespace, name }))).toMatchObject({ code: 404 });
  });

  it("updates status through the status subresource without touching spec", async () => {
    const created = (await custom.createNamespacedCustomObject({
      ...rr,
      namespace,
      body: remediationRequest("rr-status"),
    })) as KubeObject;
    const status = {
      overallPhase: "Processing",
      deduplication: { occurrenceCount: 3, firstSeenAt: "2026-01-01T10:00:01Z", lastSeenAt: "2026-01-01T10:02:00Z" },
    };
    const attempt = { ...created, spec: { ...(created.spec as object), signalName: "Changed" }, status };
    await custom.replaceNamespacedCustomObjectStatus({ ...rr, namespace, name: "rr-status", body: attempt });
    const read = (await custom.getNamespacedCustomObject({ ...rr, namespace, name: "rr-status" })) as KubeObject;
    expect(read.status).toEqual(status);
    expect((read.spec as { signalName: string }).signalName).toBe("HighMemory");

    const badPhase = { ...read, status: { ...status, overallPhase: "Sleeping" } };
    const { code, message } = await rejection(
      custom.replaceNamespacedCustomObjectStatus({ ...rr, namespace, name: "rr-status", body: badPhase }),
    );
    expect(code).toBe(422);
    expect(message).toContain("status.overallPhase");
  });

  it("answers 401 to a request without credentials or with an unknown token", async () => {
    const list = (api: CustomObjectsApi) => api.listNamespacedCustomObject({ ...rr, namespace });
    expect((await rejection(list(customApiAs()))).code).toBe(401);
    expect((await rejection(list(customApiAs("not-a-token")))).code).toBe(401);
  });

  it("answers 403 to a ServiceAccount without RBAC, 200 once a Role allows it", async () => {
    const token = await kube.serviceAccountToken(namespace, "no-rights");
    const asSa = customApiAs(token);
    const denied = await rejection(asSa.listNamespacedCustomObject({ ...rr, namespace }));
    expect(denied.code).toBe(403);
    expect(denied.message).toContain(`system:serviceaccount:${namespace}:no-rights`);

    await kube.applyYaml(`
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: { name: rr-reader, namespace: ${namespace} }
rules: [{ apiGroups: [kubernaut.ai], resources: [remediationrequests], verbs: [list] }]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: { name: rr-reader, namespace: ${namespace} }
roleRef: { apiGroup: rbac.authorization.k8s.io, kind: Role, name: rr-reader }
subjects: [{ kind: ServiceAccount, name: no-rights, namespace: ${namespace} }]
`);
    // The RBAC authorizer reads bindings through an informer: allow it to catch up.
    await eventually(() => asSa.listNamespacedCustomObject({ ...rr, namespace }), {
      what: "the RoleBinding to take effect",
    });
  });

  it("dry-run apply validates against the schema and stores nothing", async () => {
    const valid = remediationRequest("rr-dry-run");
    const [answer] = await kube.applyYaml(JSON.stringify(valid), { dryRun: "All" });
    expect(answer?.metadata.name).toBe("rr-dry-run");
    expect(await rejection(custom.getNamespacedCustomObject({ ...rr, namespace, name: "rr-dry-run" }))).toMatchObject({
      code: 404,
    });
    const invalid = remediationRequest("rr-dry-run", { priority: "P9" });
    await expect(kube.applyYaml(JSON.stringify(invalid), { dryRun: "All" })).rejects.toThrow(/422.*spec\.priority/);
    await expect(kube.applyYaml("apiVersion: v1\nkind: Nope\nmetadata: { name: x }\n")).rejects.toThrow(
      /kind Nope is not served in v1/,
    );
  });

  it("keeps every object across an API server restart, and the same client works after it", async () => {
    const before = (await custom.getNamespacedCustomObject({ ...rr, namespace, name: "rr-valid" })) as KubeObject;
    const oldPid = kube.apiServer.pid;
    await kube.restart();
    expect(kube.apiServer.pid).not.toBe(oldPid);
    const after = (await custom.getNamespacedCustomObject({ ...rr, namespace, name: "rr-valid" })) as KubeObject;
    expect(after.metadata.uid).toBe(before.metadata.uid);
    await custom.createNamespacedCustomObject({ ...rr, namespace, body: remediationRequest("rr-after-restart") });
  });

  it("refuses requests while the API server is stopped and serves again after startApiServer()", async () => {
    await kube.stopApiServer();
    const down = await rejection(custom.getNamespacedCustomObject({ ...rr, namespace, name: "rr-valid" }));
    expect(down.message).toMatch(/ECONNREFUSED/);
    await kube.startApiServer();
    const read = (await custom.getNamespacedCustomObject({ ...rr, namespace, name: "rr-after-restart" })) as KubeObject;
    expect(read.metadata.name).toBe("rr-after-restart");
  });
});

describe("KubeApiServer started from the stored CRDs (a copy of etcd's data, made once)", () => {
  it("serves the CRD at once, and one server's objects never show in another", async () => {
    const start = () => new KubeApiServer().withCrds([REMEDIATION_REQUEST_CRD]).start();
    const [a, b] = await Promise.all([start(), start()]);
    try {
      await a.createNamespace("only-in-a");
      await a.clients().custom.createNamespacedCustomObject({
        ...rr,
        namespace: "only-in-a",
        body: { ...remediationRequest("rr-in-a"), metadata: { name: "rr-in-a", namespace: "only-in-a" } },
      });
      const listed = (await b.clients().custom.listClusterCustomObject(rr)) as { items: KubeObject[] };
      expect(listed.items).toEqual([]);
      expect(await rejection(b.clients().core.readNamespace({ name: "only-in-a" }))).toMatchObject({ code: 404 });
      const again = await start();
      try {
        expect(await rejection(again.clients().core.readNamespace({ name: "only-in-a" }))).toMatchObject({ code: 404 });
      } finally {
        await again.stop();
      }
    } finally {
      await Promise.all([a.stop(), b.stop()]);
    }
  });
});

describe("KubeApiServer with a client-certificate admin", () => {
  it("writes a kubeconfig without a token whose certificate (O=system:masters) is admin", async () => {
    const kube = await new KubeApiServer().withAuth("cert").start();
    try {
      const user = kube.kubeConfig().getCurrentUser();
      expect(user?.token).toBeUndefined();
      expect(user?.certData).toBeTruthy();
      await kube.createNamespace("made-by-cert-admin");
      const ns = await kube.clients().core.readNamespace({ name: "made-by-cert-admin" });
      expect(ns.metadata?.name).toBe("made-by-cert-admin");
    } finally {
      await kube.stop();
    }
  });
});
