// What e2e:kind deploys, checked without a Docker engine: the Kind config decoded by
// kind's own v1alpha4 types (tools/kind-validate), the overlay (kustomize → a real
// kube-apiserver, server-side dry-run), its gateway config read by the gateway's own
// parser, and the image's Data Storage bundle, built as the Dockerfile builds it and
// run on a real PostgreSQL.
import { execFileSync, spawnSync } from "node:child_process";
import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import type { V1ConfigMap, V1PodSpec, V1Service } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse, parseAllDocuments, stringify } from "yaml";
import { parseConfig } from "../../gateway/src/config.js";
import { KubeApiServer, type KubeObject, type StartedKubeApiServer } from "../../harness/src/components/kube-api.js";
import { PostgresServer, type StartedPostgresServer } from "../../harness/src/components/postgres.js";
import { bundleAsTheImage } from "../../harness/src/image-bundle.js";
import { binary, repoRoot, scratchDir } from "../../harness/src/paths.js";
import { freePort } from "../../harness/src/ports.js";
import { httpReady } from "../../harness/src/probes.js";
import { ManagedProcess } from "../../harness/src/supervisor.js";

const KIND = join(repoRoot, "e2e", "kind");
const rendered = parseAllDocuments(execFileSync(binary("kustomize"), ["build", KIND], { encoding: "utf8" })).map(
  (d) => d.toJS() as KubeObject,
);
const toYaml = (objects: KubeObject[]) => objects.map((o) => stringify(o)).join("---\n");
const podSpecs = () =>
  rendered
    .filter((o) => ["Deployment", "StatefulSet"].includes(o.kind))
    .map((o) => ({
      name: o.metadata.name,
      pod: (o as unknown as { spec: { template: { spec: V1PodSpec } } }).spec.template.spec,
    }));

describe("e2e/kind: the cluster e2e:kind creates, checked here without Docker", () => {
  let kube: StartedKubeApiServer;

  beforeAll(async () => {
    kube = await new KubeApiServer().start();
    // Namespaced objects are only admitted into a namespace that exists.
    await kube.applyYaml(toYaml(rendered.filter((o) => o.kind === "Namespace")));
  });
  afterAll(async () => {
    await kube?.stop();
  });

  it("kind's own v1alpha4 types accept the Kind config, and its port mappings are the overlay's NodePorts", () => {
    const result = spawnSync(binary("kind-validate"), [join(KIND, "kind-config.yaml")], { encoding: "utf8" });
    expect(result.stdout + result.stderr).toMatch(/^OK .*kind-config\.yaml/);
    expect(result.status).toBe(0);
    const config = parse(readFileSync(join(KIND, "kind-config.yaml"), "utf8")) as {
      nodes: { extraPortMappings: { containerPort: number }[] }[];
    };
    const mapped = config.nodes.flatMap((n) => n.extraPortMappings.map((m) => m.containerPort)).sort();
    const nodePorts = rendered
      .filter((o) => o.kind === "Service")
      .flatMap((o) => ((o as V1Service).spec?.ports ?? []).map((p) => p.nodePort))
      .filter((p): p is number => p !== undefined)
      .sort();
    expect(mapped).toEqual(nodePorts);
  });

  it("the API server admits every object of the overlay (server-side dry-run)", async () => {
    const applied = await kube.applyYaml(toYaml(rendered), { dryRun: "All" });
    expect(applied).toHaveLength(rendered.length);
    const workloads = podSpecs().map((p) => p.name);
    for (const needed of [
      "gateway",
      "redis",
      "postgres",
      "data-storage",
      "prometheus",
      "alertmanager",
      "standin-orchestrator",
      "standin-aianalysis",
      "standin-workflowexecution",
      "standin-event-exporter",
    ])
      expect(workloads).toContain(needed);
  });

  it("a broken object is rejected with the API server's reason (the check can fail)", async () => {
    const service = structuredClone(rendered.find((o) => o.kind === "Service" && o.metadata.name === "data-storage"));
    const port = (service as V1Service | undefined)?.spec?.ports?.[0];
    if (!service || !port) throw new Error("no Service data-storage with a port in the overlay");
    port.port = 70_000;
    await expect(kube.applyYaml(stringify(service), { dryRun: "All" })).rejects.toThrow(
      /port.*must be between 1 and 65535/,
    );
  });

  it("the project's own processes run from the one image kind loads; every other image is pinned", () => {
    for (const { name, pod } of podSpecs())
      for (const c of [...(pod.initContainers ?? []), ...pod.containers]) {
        if (c.image?.startsWith("kubernaut/")) expect(c.image, name).toBe("kubernaut/gateway:dev");
        else expect(c.image, name).toMatch(/^[\w./-]+:(?!latest$)[\w.-]+$/);
      }
  });

  it("the gateway's config is valid for the gateway's own parser: Sentinel, the group's three nodes", () => {
    const cm = rendered.find((o) => o.kind === "ConfigMap" && o.metadata.name === "gateway-config") as
      | V1ConfigMap
      | undefined;
    const text = cm?.data?.["config.yaml"];
    if (!text) throw new Error("no gateway-config ConfigMap with config.yaml in the overlay");
    const { config } = parseConfig(text, { source: "e2e/kind/gateway-config.yaml", env: {} });
    expect(config.redis.mode).toBe("sentinel");
    const group = rendered.find((o) => o.kind === "StatefulSet" && o.metadata.name === "redis") as unknown as {
      spec: { replicas: number };
    };
    expect(config.redis.mode === "sentinel" && config.redis.sentinels).toHaveLength(group.spec.replicas);
  });

  it("the Redis group's configure script is valid shell", () => {
    const scripts = rendered.find((o) => o.kind === "ConfigMap" && o.metadata.name === "redis-scripts") as V1ConfigMap;
    const result = spawnSync("sh", ["-n"], { input: scripts.data?.["configure.sh"] ?? "", encoding: "utf8" });
    expect(result.stderr).toBe("");
    expect(result.status).toBe(0);
  });
});

describe("the image's Data Storage bundle, built like the Dockerfile builds it", () => {
  let postgres: StartedPostgresServer;
  let service: ManagedProcess | undefined;
  let dir: string;

  beforeAll(async () => {
    dir = scratchDir("data-storage-bundle");
    postgres = await new PostgresServer().start();
  });
  afterAll(async () => {
    await service?.stop();
    await postgres?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("serves on the address the pod gives it and stores an event in PostgreSQL", async () => {
    const bundle = bundleAsTheImage("data-storage.js", dir);
    const deployment = podSpecs().find((p) => p.name === "data-storage");
    const env = Object.fromEntries((deployment?.pod.containers[0]?.env ?? []).map((e) => [e.name, e.value]));
    expect(deployment?.pod.containers[0]?.command).toEqual(["node", "--enable-source-maps", "/app/data-storage.js"]);
    expect(env.DATA_STORAGE_HOST).toBe("0.0.0.0");

    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    service = new ManagedProcess({
      name: "data-storage-bundle",
      command: process.execPath,
      args: ["--enable-source-maps", bundle],
      env: {
        DATA_STORAGE_DATABASE_URL: postgres.getConnectionUri(),
        DATA_STORAGE_HOST: env.DATA_STORAGE_HOST,
        DATA_STORAGE_PORT: String(port),
      },
      ready: () => httpReady(`${url}/healthz`),
    });
    await service.start();
    const event = {
      version: "1.0",
      event_type: "gateway.signal.received",
      event_timestamp: new Date().toISOString(),
      event_category: "gateway",
      event_action: "received",
      event_outcome: "success",
      correlation_id: "kind-bundle",
      event_data: {},
    };
    const res = await fetch(`${url}/api/v1/audit/events`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(event),
    });
    expect(res.status).toBeLessThan(300);
    const stored = (await (await fetch(`${url}/api/v1/audit/events?correlation_id=kind-bundle`)).json()) as {
      events: unknown[];
    };
    expect(stored.events).toHaveLength(1);
  });
});
