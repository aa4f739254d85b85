/**
 * The gateway's deployment artifacts: the kustomize manifests (rendered with
 * the pinned kustomize and dry-run applied to a real kube-apiserver), the
 * Dockerfile (checked statically: no Docker engine here) and the image's
 * bundle step, run here and started with the shipped config under the
 * shipped RBAC against a real API server and Redis.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import type {
  V1ClusterRole,
  V1ClusterRoleBinding,
  V1ConfigMap,
  V1Container,
  V1Deployment,
  V1PolicyRule,
  V1Service,
} from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse, parseAllDocuments, stringify } from "yaml";
import { KubeApiServer, type KubeObject, type StartedKubeApiServer } from "../../harness/src/components/kube-api.js";
import { RedisServer, type StartedRedisServer } from "../../harness/src/components/redis.js";
import { bundleAsTheImage } from "../../harness/src/image-bundle.js";
import { binary, repoRoot, scratchDir } from "../../harness/src/paths.js";
import { eventually } from "../../harness/src/poll.js";
import { freePort } from "../../harness/src/ports.js";
import { httpReady } from "../../harness/src/probes.js";
import { ManagedProcess } from "../../harness/src/supervisor.js";
import { parseConfig } from "../src/config.js";
import { CONFIG_FIELDS } from "../src/config-schema.js";

const DEPLOY = join(repoRoot, "gateway", "deploy");
const NAMESPACE = "kubernaut-system";

/**
 * The base ships a PrometheusRule: the API server serves that kind only with the Prometheus
 * Operator's own CRD, which `./taskw setup` copies from the pinned module
 * (tools/prometheus-operator-crds.sh). Its absence fails the tests, never skips them.
 */
function prometheusRuleCrd(): string {
  const crd = join(repoRoot, ".tools", "prometheus-operator-crds", "monitoring.coreos.com_prometheusrules.yaml");
  if (!existsSync(crd)) throw new Error(`no PrometheusRule CRD at ${crd}: run './taskw setup'`);
  return crd;
}

function kustomizeBuild(dir: string): KubeObject[] {
  const text = execFileSync(binary("kustomize"), ["build", dir], { encoding: "utf8" });
  return parseAllDocuments(text).map((d) => d.toJS() as KubeObject);
}

function toYaml(objects: KubeObject[]): string {
  return objects.map((o) => stringify(o)).join("---\n");
}

function find<T>(objects: KubeObject[], kind: string, name?: string): T {
  const found = objects.find((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
  if (!found) throw new Error(`no ${kind}${name ? ` ${name}` : ""} in the rendered manifests`);
  return found as unknown as T;
}

function gatewayContainer(deployment: V1Deployment): V1Container {
  const container = deployment.spec?.template.spec?.containers.find((c) => c.name === "gateway");
  if (!container) throw new Error("the Deployment has no container named gateway");
  return container;
}

/** "320Mi" → bytes (the binary suffixes the manifests use). */
function quantityBytes(q: string): number {
  const units: Record<string, number> = { Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3 };
  const m = /^(\d+)(Ki|Mi|Gi)?$/.exec(q);
  if (!m) throw new Error(`unsupported quantity ${q}`);
  return Number(m[1]) * (units[m[2] ?? ""] ?? 1);
}

function shippedConfig(objects: KubeObject[]): { text: string; file: string } {
  const cm = find<V1ConfigMap>(objects, "ConfigMap", "gateway-config");
  const [file, text] = Object.entries(cm.data ?? {})[0] ?? [];
  if (!file || !text) throw new Error("ConfigMap gateway-config holds no file");
  return { file, text };
}

/** Dockerfile instructions with continuation lines joined, grouped by stage. */
function dockerfileStages(): { from: string; instructions: { op: string; args: string }[] }[] {
  const text = readFileSync(join(repoRoot, "gateway", "Dockerfile"), "utf8");
  const lines = text
    .replace(/\\\n/g, " ")
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith("#"));
  const stages: { from: string; instructions: { op: string; args: string }[] }[] = [];
  for (const line of lines) {
    const [, op = "", args = ""] = /^(\S+)\s*(.*)$/.exec(line) ?? [];
    if (op.toUpperCase() === "FROM") stages.push({ from: args, instructions: [] });
    else stages.at(-1)?.instructions.push({ op: op.toUpperCase(), args });
  }
  return stages;
}

describe("gateway deploy manifests (kustomize → real kube-apiserver, server-side dry-run)", () => {
  let kube: StartedKubeApiServer;
  let base: KubeObject[];
  let kind: KubeObject[];

  beforeAll(async () => {
    base = kustomizeBuild(join(DEPLOY, "base"));
    kind = kustomizeBuild(join(DEPLOY, "overlays", "kind"));
    kube = await new KubeApiServer().withCrds([prometheusRuleCrd()]).start();
    // Namespaced objects are only admitted into a namespace that exists.
    await kube.applyYaml(toYaml(base.filter((o) => o.kind === "Namespace")));
  });
  afterAll(async () => {
    await kube?.stop();
  });

  it("the API server admits every object of the base", async () => {
    const applied = await kube.applyYaml(toYaml(base), { dryRun: "All" });
    expect(applied.map((o) => o.kind).sort()).toEqual(
      [
        "ClusterRole",
        "ClusterRoleBinding",
        "ConfigMap",
        "CustomResourceDefinition",
        "Deployment",
        "Namespace",
        "PodDisruptionBudget",
        "PrometheusRule",
        "Service",
        "ServiceAccount",
      ].sort(),
    );
    for (const o of base.filter(
      (o) => !["Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding"].includes(o.kind),
    )) {
      expect(o.metadata.namespace, `${o.kind} ${o.metadata.name}`).toBe(NAMESPACE);
    }
  });

  it("the API server admits every object of the kind overlay", async () => {
    const applied = await kube.applyYaml(toYaml(kind), { dryRun: "All" });
    expect(applied).toHaveLength(kind.length);
  });

  it("a Deployment with an invalid field value is rejected (the check can fail)", async () => {
    const broken = structuredClone(find<V1Deployment>(base, "Deployment", "gateway"));
    const port = gatewayContainer(broken).ports?.[0];
    if (!port) throw new Error("the gateway container declares no port");
    port.containerPort = 70_000;
    await expect(kube.applyYaml(stringify(broken), { dryRun: "All" })).rejects.toThrow(
      /containerPort.*must be between 1 and 65535/,
    );
  });

  it("a PrometheusRule with an invalid duration is rejected by the operator's schema (the check can fail)", async () => {
    const broken = structuredClone(
      find<KubeObject & { spec: { groups: { rules: { for?: string }[] }[] } }>(base, "PrometheusRule"),
    );
    const rule = broken.spec.groups[0]?.rules[0];
    if (!rule) throw new Error("the PrometheusRule holds no rule");
    rule.for = "10 minutes";
    await expect(kube.applyYaml(stringify(broken), { dryRun: "All" })).rejects.toThrow(
      /spec\.groups\[0\]\.rules\[0\]\.for.*should match/,
    );
  });

  it("RBAC grants exactly the least-privilege set, to the Deployment's ServiceAccount", () => {
    const role = find<V1ClusterRole>(base, "ClusterRole");
    const normalized = (rules: V1PolicyRule[]) =>
      rules
        .flatMap((r) =>
          (r.apiGroups ?? []).flatMap((g) =>
            (r.resources ?? []).map((res) => `${g}/${res}: ${[...(r.verbs ?? [])].sort().join(",")}`),
          ),
        )
        .sort();
    expect(normalized(role.rules ?? [])).toEqual(
      [
        "kubernaut.ai/remediationrequests: create,get,list,patch,watch",
        "kubernaut.ai/remediationrequests/status: get,patch,update",
        "/namespaces: get,list,watch",
        "authentication.k8s.io/tokenreviews: create",
      ].sort(),
    );
    expect(JSON.stringify(role.rules)).not.toContain("*");
    expect(role.rules?.some((r) => r.nonResourceURLs || r.resourceNames)).toBe(false);

    const binding = find<V1ClusterRoleBinding>(base, "ClusterRoleBinding");
    const deployment = find<V1Deployment>(base, "Deployment", "gateway");
    expect(binding.roleRef).toMatchObject({ kind: "ClusterRole", name: role.metadata?.name });
    expect(binding.subjects).toEqual([
      { kind: "ServiceAccount", name: deployment.spec?.template.spec?.serviceAccountName, namespace: NAMESPACE },
    ]);
  });

  it("the Deployment has probes, a preStop drain, resources and a locked-down securityContext", () => {
    const deployment = find<V1Deployment>(base, "Deployment", "gateway");
    const pod = deployment.spec?.template.spec;
    const c = gatewayContainer(deployment);
    expect(deployment.spec?.replicas).toBe(2);
    expect(c.readinessProbe?.httpGet).toMatchObject({ path: "/readyz", port: "http" });
    expect(c.livenessProbe?.httpGet).toMatchObject({ path: "/healthz", port: "http" });
    expect(c.lifecycle?.preStop?.sleep?.seconds).toBeGreaterThan(0);
    for (const kind of ["requests", "limits"] as const) {
      expect(Object.keys(c.resources?.[kind] ?? {}).sort(), kind).toEqual(["cpu", "memory"]);
    }
    expect(pod?.securityContext).toMatchObject({ runAsNonRoot: true, seccompProfile: { type: "RuntimeDefault" } });
    expect(c.securityContext).toMatchObject({
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ["ALL"] },
    });
    expect(c.securityContext?.capabilities?.add).toBeUndefined();
    // The Redis password comes from a Secret, through the variable the gateway reads for redis.password.
    const passwordEnv = CONFIG_FIELDS.find((f) => f.path === "redis.password")?.env;
    expect(c.env?.find((e) => e.name === passwordEnv)?.valueFrom?.secretKeyRef).toMatchObject({
      name: "gateway-redis",
      key: "password",
    });

    const pdb = find<KubeObject & { spec: { minAvailable: number; selector: unknown } }>(base, "PodDisruptionBudget");
    expect(pdb.spec.minAvailable).toBe(1);
    expect(pdb.spec.selector).toEqual(deployment.spec?.selector);
  });

  it("the shipped config is valid for the gateway and fits the Deployment (mounts, ports, shutdown budget)", () => {
    const { text, file } = shippedConfig(base);
    const { config } = parseConfig(text, { source: "ConfigMap gateway-config", env: {} });
    expect(config.auth.enabled).toBe(true);
    expect(config.kubernetes.mode).toBe("in-cluster");
    expect(config.processing.deduplication.ttlMs).toBe(5 * 60_000);

    const deployment = find<V1Deployment>(base, "Deployment", "gateway");
    const pod = deployment.spec?.template.spec;
    const c = gatewayContainer(deployment);
    const mountOf = (path: string) =>
      c.volumeMounts?.find((m) => path === m.mountPath || path.startsWith(`${m.mountPath}/`));
    const volumeOf = (name?: string) => pod?.volumes?.find((v) => v.name === name);

    // --config points at the ConfigMap's file, mounted as a directory (so edits reach the pod and reload).
    const configPath = c.args?.[c.args.indexOf("--config") + 1] ?? "";
    const configMount = mountOf(configPath);
    expect(configMount?.subPath).toBeUndefined();
    expect(configPath).toBe(`${configMount?.mountPath}/${file}`);
    expect(volumeOf(configMount?.name)?.configMap?.name).toBe("gateway-config");

    // The audit journal is on a writable emptyDir that holds journalMax.
    const journal = volumeOf(mountOf(config.dataStorage.journalDir)?.name);
    expect(journal?.emptyDir).toBeDefined();
    expect(quantityBytes(journal?.emptyDir?.sizeLimit ?? "0")).toBeGreaterThanOrEqual(
      config.dataStorage.journalMaxBytes,
    );

    const port = Number(config.server.listenAddress.split(":").pop());
    expect(c.ports?.find((p) => p.name === "http")?.containerPort).toBe(port);
    const service = find<V1Service>(base, "Service", "gateway");
    expect(service.spec?.ports?.[0]?.targetPort).toBe("http");
    expect(service.spec?.selector).toEqual(deployment.spec?.selector?.matchLabels);

    // SIGTERM arrives after preStop; the pipeline close gets auditFlushTimeout + 5 s (gateway/src/shutdown.ts).
    const { gracePeriodMs, drainTimeoutMs, auditFlushTimeoutMs } = config.shutdown;
    const shutdownMs =
      (c.lifecycle?.preStop?.sleep?.seconds ?? 0) * 1000 + gracePeriodMs + drainTimeoutMs + auditFlushTimeoutMs + 5_000;
    expect((pod?.terminationGracePeriodSeconds ?? 30) * 1000).toBeGreaterThan(shutdownMs);
  });

  it("the kind overlay runs the locally loaded dev image once, on the NodePort kind-config.yaml maps", () => {
    const deployment = find<V1Deployment>(kind, "Deployment", "gateway");
    const c = gatewayContainer(deployment);
    expect(c.image).toBe("kubernaut/gateway:dev");
    expect(c.imagePullPolicy).toBe("IfNotPresent");
    expect(deployment.spec?.replicas).toBe(1);
    expect(kind.some((o) => o.kind === "PodDisruptionBudget")).toBe(false);
    expect(kind.some((o) => o.kind === "PrometheusRule")).toBe(false);
    // The overlay's generated Secret is the one the Deployment references (kustomize renamed both).
    const secretName = c.env?.find((e) => e.valueFrom?.secretKeyRef)?.valueFrom?.secretKeyRef?.name;
    expect(find<KubeObject>(kind, "Secret").metadata.name).toBe(secretName);

    const cluster = parse(readFileSync(join(DEPLOY, "overlays", "kind", "kind-config.yaml"), "utf8"));
    expect(cluster).toMatchObject({ kind: "Cluster", apiVersion: "kind.x-k8s.io/v1alpha4" });
    const node = cluster.nodes[0];
    const [, minor] = /^kindest\/node:v1\.(\d+)\./.exec(node.image) ?? [];
    expect(Number(minor), "preStop sleep needs Kubernetes >= 1.30").toBeGreaterThanOrEqual(30);
    const nodePort = find<V1Service>(kind, "Service", "gateway").spec?.ports?.[0]?.nodePort;
    expect(node.extraPortMappings).toContainEqual(expect.objectContaining({ containerPort: nodePort }));
  });
});

describe("kind-config.yaml decoded by kind's own v1alpha4 types (tools/kind-validate; no Docker engine here)", () => {
  const CONFIG = join(DEPLOY, "overlays", "kind", "kind-config.yaml");
  const validate = (file: string) => spawnSync(binary("kind-validate"), [file], { encoding: "utf8" });

  it("holds: strict decoding, one control-plane node, its port mapping", () => {
    const res = validate(CONFIG);
    expect(res.stdout.trim(), res.stderr).toBe(`OK ${CONFIG} (1 nodes, 1 port mappings)`);
    expect(res.status).toBe(0);
  });

  it.each([
    [
      "a misspelt field",
      (c: string) => c.replace("extraPortMappings:", "extraPortMapping:"),
      'unknown field "extraPortMapping"',
    ],
    ["a port as text", (c: string) => c.replace("hostPort: 30080", 'hostPort: "high"'), "hostPort"],
    [
      "no control plane",
      (c: string) => c.replace("role: control-plane", "role: worker"),
      "at least one control-plane node",
    ],
    [
      "a host port mapped twice",
      (c: string) => c.replace(/(\n {6}- containerPort: 30080[\s\S]*?protocol: TCP)/, "$1$1"),
      "maps host port 127.0.0.1:30080/TCP, which nodes[0].extraPortMappings[0] maps already",
    ],
  ])("rejects %s, naming it", (_what, breakIt, message) => {
    const dir = scratchDir("kind-config");
    try {
      const broken = join(dir, "kind-config.yaml");
      writeFileSync(broken, breakIt(readFileSync(CONFIG, "utf8")));
      const res = validate(broken);
      expect(res.stdout).toContain(`INVALID ${broken}: `);
      expect(res.stdout).toContain(message);
      expect(res.status).toBe(1);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("gateway/Dockerfile (checked statically: no Docker engine here)", () => {
  const stages = dockerfileStages();
  const final = stages.at(-1);
  let deployment: V1Deployment;
  beforeAll(() => {
    deployment = find<V1Deployment>(kustomizeBuild(join(DEPLOY, "base")), "Deployment", "gateway");
  });

  it("is multi-stage with every base image pinned to an exact version", () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    for (const { from } of stages)
      expect(from).toMatch(/^(node:\d+\.\d+\.\d+-[a-z]+-slim|\S+@sha256:[a-f0-9]{64})(\s+AS\s+\w+)?$/i);
  });

  it("the final stage runs as a numeric non-root user that matches the pod's runAsUser", () => {
    const users = final?.instructions.filter((i) => i.op === "USER") ?? [];
    const uid = Number(users.at(-1)?.args.split(":")[0]);
    expect(uid).toBeGreaterThan(0);
    expect(deployment.spec?.template.spec?.securityContext?.runAsUser).toBe(uid);
  });

  it("the final stage holds only the bundle, starts node on it with the config path the Deployment uses, and exposes the gateway port", () => {
    const ops = final?.instructions ?? [];
    expect(ops.filter((i) => i.op === "COPY").map((i) => i.args)).toEqual(["--from=build /src/dist/ /app/"]);
    expect(ops.some((i) => i.op === "RUN")).toBe(false);
    const entrypoint = JSON.parse(ops.find((i) => i.op === "ENTRYPOINT")?.args ?? "[]") as string[];
    expect(entrypoint[0]).toBe("node");
    expect(entrypoint.at(-1)).toBe("/app/main.js");
    const cmd = JSON.parse(ops.find((i) => i.op === "CMD")?.args ?? "[]") as string[];
    expect(cmd).toEqual(gatewayContainer(deployment).args);
    expect(ops.find((i) => i.op === "EXPOSE")?.args).toBe("8080");
  });

  it("carries no secrets, and the root .dockerignore admits only what the build copies", () => {
    const all = stages.flatMap((s) => s.instructions);
    for (const i of all.filter((i) => ["ENV", "ARG", "LABEL"].includes(i.op))) {
      expect(i.args).not.toMatch(/password|secret|token|api[_-]?key|credential/i);
    }
    const copied = all
      .filter((i) => i.op === "COPY" && !i.args.startsWith("--from"))
      .flatMap((i) => i.args.split(/\s+/).slice(0, -1));
    expect(copied.join(" ")).not.toMatch(/\.env|\.pem|\.key|kubeconfig|\.npmrc/);

    const patterns = readFileSync(join(repoRoot, ".dockerignore"), "utf8")
      .split("\n")
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith("#"));
    expect(patterns[0]).toBe("*");
    const admitted = patterns.filter((p) => p.startsWith("!")).map((p) => p.slice(1).replace(/\/$/, ""));
    for (const src of copied) expect(admitted, src).toContain(src.replace(/\/$/, ""));
    for (const never of ["node_modules", ".git", ".tools", "results"]) expect(admitted).not.toContain(never);
  });
});

describe("the image's bundle, built like the Dockerfile builds it, under the shipped config and RBAC", () => {
  let kube: StartedKubeApiServer;
  let redis: StartedRedisServer;
  let gateway: ManagedProcess | undefined;
  let dir: string;

  beforeAll(async () => {
    dir = scratchDir("gateway-bundle");
    [kube, redis] = await Promise.all([
      new KubeApiServer().withCrds([prometheusRuleCrd()]).start(),
      new RedisServer().start(),
    ]);
  });
  afterAll(async () => {
    await gateway?.stop();
    await Promise.all([kube?.stop(), redis?.stop()]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** A kubeconfig that authenticates as the gateway's ServiceAccount, so only the shipped RBAC applies. */
  function serviceAccountKubeconfig(): Promise<string> {
    return kube.serviceAccountKubeconfig(NAMESPACE, "gateway", join(dir, "gateway.kubeconfig"));
  }

  it("serves signals: auth via TokenReview, RemediationRequest created with the namespace's environment, duplicates counted in status", async () => {
    const main = bundleAsTheImage("main.js", dir);
    const rendered = kustomizeBuild(join(DEPLOY, "base"));
    await kube.applyYaml(toYaml(rendered)); // CRD, namespace, ServiceAccount, RBAC, PrometheusRule (for real this time)
    await kube.createNamespace("deploy-check", { environment: "production" });

    // The shipped config; only the addresses of this machine's components and the credentials differ.
    const config = parse(shippedConfig(rendered).text);
    const port = await freePort();
    config.server.listenAddress = `127.0.0.1:${port}`;
    config.redis.url = redis.getConnectionUrl();
    config.kubernetes = { mode: "kubeconfig", kubeconfigPath: await serviceAccountKubeconfig() };
    config.dataStorage = {
      ...config.dataStorage,
      url: `http://127.0.0.1:${await freePort()}`,
      journalDir: join(dir, "journal"),
    };
    config.shutdown = { ...config.shutdown, gracePeriod: "0s", auditFlushTimeout: "1s" };
    const configPath = join(dir, "config.yaml");
    writeFileSync(configPath, stringify(config));

    const url = `http://127.0.0.1:${port}`;
    gateway = new ManagedProcess({
      name: "gateway-bundle",
      command: process.execPath,
      args: [main, "--config", configPath],
      cwd: dirname(main),
      ready: () => httpReady(`${url}/readyz`),
      readyTimeoutMs: 30_000,
    });
    await gateway.start();

    const alert = {
      version: "4",
      groupKey: '{}:{alertname="DeployCheck"}',
      truncatedAlerts: 0,
      status: "firing",
      receiver: "gateway",
      groupLabels: { alertname: "DeployCheck" },
      commonLabels: {},
      commonAnnotations: {},
      externalURL: "http://alertmanager:9093",
      alerts: [
        {
          status: "firing",
          labels: { alertname: "DeployCheck", severity: "critical", namespace: "deploy-check", pod: "api-0" },
          annotations: { summary: "deploy check" },
          startsAt: new Date().toISOString(),
          endsAt: "0001-01-01T00:00:00Z",
          generatorURL: "http://prometheus:9090/graph",
          fingerprint: "0123456789abcdef",
        },
      ],
    };
    const post = (token?: string) =>
      fetch(`${url}/api/v1/signals/prometheus`, {
        method: "POST",
        headers: { "Content-Type": "application/json", ...(token ? { Authorization: `Bearer ${token}` } : {}) },
        body: JSON.stringify(alert),
      });

    expect((await post()).status).toBe(401);
    const sender = await kube.serviceAccountToken("deploy-check", "alertmanager");
    const first = await post(sender);
    expect(first.status, await first.clone().text()).toBe(201);
    expect((await post(sender)).status).toBe(202);

    // Real state, read as the cluster admin.
    const { custom } = kube.clients();
    const list = () =>
      custom.listNamespacedCustomObject({
        group: "kubernaut.ai",
        version: "v1alpha1",
        namespace: "deploy-check",
        plural: "remediationrequests",
      }) as Promise<{
        items: {
          spec: { environment: string; priority: string };
          status?: { deduplication?: { occurrenceCount?: number } };
        }[];
      }>;
    const { items } = await list();
    expect(items).toHaveLength(1);
    expect(items[0]?.spec).toMatchObject({ environment: "production", priority: "P0" });
    await eventually(async () => (await list()).items[0]?.status?.deduplication?.occurrenceCount === 2, {
      what: "status.deduplication.occurrenceCount to reach 2",
      timeoutMs: 15_000,
    });
  });
});
