/**
 * The k6-operator TestRun manifests of load/k8s: rendered with the pinned
 * kustomize, checked by a real kube-apiserver that serves the TestRun CRD
 * (server-side dry-run), and checked for what the API server cannot see:
 * one TestRun per scenario script, every script import resolvable inside the
 * runner's mounts, and the target being the gateway Service of gateway/deploy.
 */
import { execFileSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { join, posix } from "node:path";
import type { V1ConfigMap, V1Container, V1Service, V1Volume } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseAllDocuments, stringify } from "yaml";
import { KubeApiServer, type KubeObject, type StartedKubeApiServer } from "../../harness/src/components/kube-api.js";
import { binary, repoRoot } from "../../harness/src/paths.js";

const CRD = join(repoRoot, "load", "k8s", "crd", "k6-operator-testrun-crd.yaml");

interface TestRun extends KubeObject {
  spec: {
    parallelism: number;
    script: { localFile?: string; configMap?: { name: string; file?: string } };
    arguments?: string;
    runner: Pick<V1Container, "env" | "volumeMounts"> & { volumes?: V1Volume[] };
  };
}

function kustomizeBuild(dir: string, ...flags: string[]): KubeObject[] {
  const text = execFileSync(binary("kustomize"), ["build", ...flags, dir], { encoding: "utf8" });
  return parseAllDocuments(text).map((d) => d.toJS() as KubeObject);
}

const toYaml = (objects: KubeObject[]) => objects.map((o) => stringify(o)).join("---\n");

describe("load/k8s TestRuns (kustomize → real kube-apiserver with the TestRun CRD, server-side dry-run)", () => {
  let kube: StartedKubeApiServer;
  let rendered: KubeObject[];
  let testRuns: TestRun[];

  beforeAll(async () => {
    // The generators read ../scripts and ../lib, outside the kustomization's folder.
    rendered = kustomizeBuild(join(repoRoot, "load", "k8s"), "--load-restrictor", "LoadRestrictionsNone");
    testRuns = rendered.filter((o): o is TestRun => o.kind === "TestRun");
    kube = await new KubeApiServer().withCrds([CRD]).start();
    await kube.applyYaml(toYaml(rendered.filter((o) => o.kind === "Namespace")));
  });
  afterAll(async () => {
    await kube?.stop();
  });

  it("the API server admits every object, and keeps every TestRun field (the CRD schema prunes nothing)", async () => {
    const applied = await kube.applyYaml(toYaml(rendered), { dryRun: "All" });
    expect(applied).toHaveLength(rendered.length);
    for (const run of testRuns) {
      const answer = applied.find((o) => o.kind === "TestRun" && o.metadata.name === run.metadata.name);
      expect(answer?.spec, run.metadata.name).toEqual(run.spec);
    }
  });

  it.each([
    ["parallelism of the wrong type", { parallelism: "four" }, /parallelism: expected numeric/],
    ["no runner at all", { parallelism: 0 }, /parallelism.*greater than or equal to 1/],
    [
      "two script sources",
      { script: { localFile: "/x.ts", configMap: { name: "x" } } },
      /exactly one of configMap, volumeClaim, localFile/,
    ],
    ["an unknown cleanup policy", { cleanup: "always" }, /cleanup.*Unsupported value/],
  ])("a TestRun with %s is rejected (the check can fail)", async (_what, change, error) => {
    const broken = structuredClone(testRuns[0] as TestRun);
    Object.assign(broken.spec, change);
    await expect(kube.applyYaml(stringify(broken), { dryRun: "All" })).rejects.toThrow(error);
  });

  it("one TestRun per scenario script: 4 runners, a testid tag, Prometheus remote write", () => {
    const scripts = readdirSync(join(repoRoot, "load", "scripts")).filter((f) => f.endsWith(".ts"));
    expect(testRuns.map((r) => posix.basename(r.spec.script.localFile ?? "")).sort()).toEqual(scripts.sort());
    for (const run of testRuns) {
      const name = run.metadata.name;
      expect(run.spec.parallelism, name).toBe(4);
      expect(run.spec.arguments, name).toContain(`--tag testid=k8s-${name}`);
      expect(run.spec.arguments, name).toMatch(/(^|\s)-o experimental-prometheus-rw(\s|$)/);
      const env = new Map(run.spec.runner.env?.map((e) => [e.name, e]));
      expect(env.get("K6_PROMETHEUS_RW_SERVER_URL")?.value, name).toMatch(/^http:\/\/\S+\/api\/v1\/write$/);
    }
  });

  it("TARGET is the gateway Service of gateway/deploy, and GATEWAY_TOKEN a token of a ServiceAccount rendered here", () => {
    const gateway = kustomizeBuild(join(repoRoot, "gateway", "deploy", "base")).find(
      (o) => o.kind === "Service" && o.metadata.name === "gateway",
    ) as V1Service | undefined;
    const port = gateway?.spec?.ports?.[0]?.port;
    const target = `http://${gateway?.metadata?.name}.${gateway?.metadata?.namespace}.svc.cluster.local:${port}`;
    for (const run of testRuns) {
      const env = new Map(run.spec.runner.env?.map((e) => [e.name, e]));
      expect(env.get("TARGET")?.value, run.metadata.name).toBe(target);
      const ref = env.get("GATEWAY_TOKEN")?.valueFrom?.secretKeyRef;
      const secret = rendered.find((o) => o.kind === "Secret" && o.metadata.name === ref?.name) as KubeObject & {
        type?: string;
      };
      expect(secret?.type).toBe("kubernetes.io/service-account-token");
      const account = (secret.metadata.annotations as Record<string, string>)["kubernetes.io/service-account.name"];
      expect(rendered.some((o) => o.kind === "ServiceAccount" && o.metadata.name === account)).toBe(true);
      expect(ref?.key).toBe("token");
    }
  });

  it("the script and every file it imports resolve inside the runner's ConfigMap mounts", () => {
    for (const run of testRuns) {
      // The runner's file tree: every mounted ConfigMap key at its mount path.
      const files = new Map<string, string>();
      for (const mount of run.spec.runner.volumeMounts ?? []) {
        const volume = run.spec.runner.volumes?.find((v) => v.name === mount.name);
        const cm = rendered.find((o) => o.kind === "ConfigMap" && o.metadata.name === volume?.configMap?.name) as
          | V1ConfigMap
          | undefined;
        expect(cm, `ConfigMap ${volume?.configMap?.name} mounted at ${mount.mountPath}`).toBeDefined();
        for (const [key, text] of Object.entries(cm?.data ?? {})) files.set(posix.join(mount.mountPath, key), text);
      }
      const pending = [run.spec.script.localFile ?? ""];
      const seen = new Set<string>();
      while (pending.length > 0) {
        const file = pending.pop() as string;
        if (seen.has(file)) continue;
        seen.add(file);
        expect(files.has(file), `${run.metadata.name}: ${file}`).toBe(true);
        for (const [, spec] of (files.get(file) ?? "").matchAll(/(?:from|import)\s+"(\.{1,2}\/[^"]+)"/g)) {
          pending.push(posix.join(posix.dirname(file), spec as string));
        }
      }
      expect(seen.size, run.metadata.name).toBeGreaterThan(1);
    }
  });
});
