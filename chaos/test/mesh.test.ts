/**
 * The Chaos Mesh manifests of chaos/mesh, checked three ways: by the real
 * Chaos Mesh CRDs in a real kube-apiserver (server-side dry-run), by Chaos
 * Mesh's own webhook code (tools/chaos-mesh-validate: Default, then
 * ValidateCreate), and for what neither can see: selectors, ports, paths and
 * URLs against what gateway/deploy/base gives the pods, and the Workflow and
 * Schedule carrying the same specs as the experiment files.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import type { V1Container, V1Deployment, V1Service } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse, parseAllDocuments, stringify } from "yaml";
import { KubeApiServer, type KubeObject, type StartedKubeApiServer } from "../../harness/src/components/kube-api.js";
import { binary, repoRoot, scratchDir } from "../../harness/src/paths.js";

const MESH = join(repoRoot, "chaos", "mesh");
const BASE = join(repoRoot, "gateway", "deploy", "base");
const CRDS = join(repoRoot, ".tools", "chaos-mesh-crds");

/** The labels chaos/mesh/README.md asks of the user's Redis and Data Storage pods (the base deploys neither). */
const REDIS = { "app.kubernetes.io/name": "redis" };
const REDIS_MASTER = { ...REDIS, "app.kubernetes.io/component": "master" };
const DATA_STORAGE = { "app.kubernetes.io/name": "data-storage" };

interface Selector {
  namespaces?: string[];
  labelSelectors?: Record<string, string>;
  [other: string]: unknown;
}
interface ChaosSpec {
  selector: Selector;
  target?: { mode: string; selector: Selector };
  externalTargets?: string[];
  containerNames?: string[];
  duration?: string;
  [field: string]: unknown;
}
interface Template {
  name: string;
  templateType: string;
  deadline?: string;
  children?: string[];
  statusCheck?: { mode: string; http: { url: string } };
  abortWithStatusCheck?: boolean;
  [chaosField: string]: unknown;
}
type Chaos = KubeObject & { spec: ChaosSpec };
type Workflow = KubeObject & { spec: { entry: string; templates: Template[] } };
type Schedule = KubeObject & { spec: { type: string } & Record<string, unknown> };

/**
 * The CRDs of the kinds `objects` use, from what `./taskw setup` extracted
 * (its absence fails the tests, never skips them). Only those: each CRD costs
 * the API server seconds, the WorkflowNode one alone is 1.3 MB.
 */
function crdFilesFor(objects: KubeObject[]): string[] {
  const files = existsSync(CRDS) ? readdirSync(CRDS).filter((f) => f.endsWith(".yaml")) : [];
  if (files.length === 0) throw new Error(`no Chaos Mesh CRDs in ${CRDS}: run './taskw setup'`);
  const byKind = new Map(
    files.map((f) => {
      const crd = parse(readFileSync(join(CRDS, f), "utf8")) as { spec: { names: { kind: string } } };
      return [crd.spec.names.kind, join(CRDS, f)];
    }),
  );
  return [...new Set(objects.map((o) => o.kind))].map((kind) => {
    const file = byKind.get(kind);
    if (!file) throw new Error(`no CRD for kind ${kind} in ${CRDS}`);
    return file;
  });
}

/** Every manifest under chaos/mesh (the kustomization is not one). */
const files = (readdirSync(MESH, { recursive: true }) as string[])
  .filter((f) => f.endsWith(".yaml") && !f.endsWith("kustomization.yaml"))
  .sort()
  .map((f) => join(MESH, f));
const docsOf = (file: string) =>
  parseAllDocuments(readFileSync(file, "utf8"))
    .map((d) => d.toJS() as KubeObject | null)
    .filter((o): o is KubeObject => o !== null);
const manifests = files.map((file) => ({ file, objects: docsOf(file) }));
const all = manifests.flatMap((m) => m.objects);
const experiments = manifests.filter((m) => m.file.includes("/experiments/")).flatMap((m) => m.objects as Chaos[]);
const workflow = all.find((o) => o.kind === "Workflow") as Workflow;
const schedule = all.find((o) => o.kind === "Schedule") as Schedule;

/** Field of an embedded chaos spec in Workflow steps and Schedules: NetworkChaos → networkChaos, HTTPChaos → httpChaos. */
const fieldOf = (kind: string) => `${kind.replace(/Chaos$/, "").toLowerCase()}Chaos`;
const chaosSteps = () => workflow.spec.templates.filter((t) => t.templateType.endsWith("Chaos"));
const without = <T extends object>(o: T, key: string) =>
  Object.fromEntries(Object.entries(o).filter(([k]) => k !== key)) as T;
const seconds = (d = "0s") => {
  const m = /^(\d+)(s|m|h)$/.exec(d);
  if (!m) throw new Error(`unsupported duration ${d}`);
  return Number(m[1]) * { s: 1, m: 60, h: 3600 }[m[2] as "s" | "m" | "h"];
};

/** Every chaos spec that reaches the cluster: the experiment files, the Workflow's steps, the Schedule's. */
function chaosSpecs(): { where: string; kind: string; spec: ChaosSpec }[] {
  return [
    ...experiments.map((e) => ({ where: `${e.kind} ${e.metadata.name}`, kind: e.kind, spec: e.spec })),
    ...chaosSteps().map((t) => ({
      where: `Workflow step ${t.name}`,
      kind: t.templateType,
      spec: t[fieldOf(t.templateType)] as ChaosSpec,
    })),
    { where: "Schedule", kind: schedule.spec.type, spec: schedule.spec[fieldOf(schedule.spec.type)] as ChaosSpec },
  ];
}

/** Runs the validator on files; its lines and exit status. */
function validate(...paths: string[]): { status: number | null; lines: string[]; stderr: string } {
  const res = spawnSync(binary("chaos-mesh-validate"), paths, { encoding: "utf8" });
  return { status: res.status, lines: res.stdout.split("\n").filter(Boolean), stderr: res.stderr };
}

describe("chaos/mesh against the Chaos Mesh CRDs (real kube-apiserver, server-side dry-run)", () => {
  let kube: StartedKubeApiServer;

  beforeAll(async () => {
    // applyYaml is a server-side apply: the Workflow and Schedule CRDs are larger than
    // the last-applied annotation a client-side apply would write.
    kube = await new KubeApiServer().withCrds(crdFilesFor(all)).start();
    const namespaces = new Set(all.map((o) => o.metadata.namespace ?? "default"));
    for (const ns of namespaces) if (ns !== "default") await kube.createNamespace(ns);
  }, 300_000);
  afterAll(async () => {
    await kube?.stop();
  });

  it.each(files.map((f) => [relative(MESH, f), f]))(
    "%s is admitted, every field kept (none pruned)",
    async (_name, file) => {
      const applied = await kube.applyYaml(file, { dryRun: "All" });
      const source = docsOf(file);
      expect(applied).toHaveLength(source.length);
      for (const [i, obj] of source.entries())
        expect(applied[i]?.spec, obj.metadata.name).toMatchObject(obj.spec as object);
    },
  );

  const spec = (o: KubeObject) => (o as Chaos).spec;
  it.each([
    [
      "an unknown mode",
      "experiments/pod-gateway-failure.yaml",
      (o: KubeObject) => Object.assign(spec(o), { mode: "sometimes" }),
      /spec\.mode: Unsupported value: "sometimes"/,
    ],
    [
      "a misspelt field",
      "experiments/network-redis-delay.yaml",
      (o: KubeObject) => Object.assign(spec(o), { directionn: "to" }),
      /\.spec\.directionn: field not declared in schema/,
    ],
    [
      "a number for a string",
      "experiments/network-redis-loss.yaml",
      (o: KubeObject) => Object.assign(spec(o), { loss: { loss: 30 } }),
      /\.spec\.loss\.loss: expected string/,
    ],
    [
      // The webhook's JSON decoding matches field names case-insensitively and admits this one.
      "a Workflow step's chaos under a miscased field",
      "workflow.yaml",
      (o: KubeObject) => {
        const step = (o as Workflow).spec.templates.find((t) => t.templateType === "HTTPChaos") as Template;
        step.hTTPChaos = step.httpChaos;
        delete step.httpChaos;
      },
      /\.spec\.templates\[\d+\]\.hTTPChaos: field not declared in schema/,
    ],
  ])("a manifest with %s is rejected by the schema", async (_what, file, change, error) => {
    const broken = structuredClone(docsOf(join(MESH, file))[0] as KubeObject);
    change(broken);
    await expect(kube.applyYaml(stringify(broken), { dryRun: "All" })).rejects.toThrow(error);
  });
});

describe("chaos/mesh against Chaos Mesh's webhook code (tools/chaos-mesh-validate)", () => {
  let dir: string;
  beforeAll(() => {
    dir = scratchDir("chaos-mesh-validate");
  });
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** A copy of a manifest of chaos/mesh with `change` applied, written to the scratch dir. */
  function brokenCopy(file: string, change: (o: KubeObject) => void): string {
    const obj = structuredClone(docsOf(join(MESH, file))[0] as KubeObject);
    change(obj);
    const path = join(dir, file.replaceAll("/", "-"));
    writeFileSync(path, stringify(obj));
    return path;
  }

  it("every manifest is admitted: one OK line per document", () => {
    const { status, lines, stderr } = validate(...files);
    expect(status, stderr).toBe(0);
    expect(lines).toEqual(
      manifests.flatMap(({ file, objects }) => objects.map((o) => `OK ${file} ${o.kind}/${o.metadata.name}`)),
    );
  });

  it("what chaos:mesh:apply applies, the kustomize rendering of chaos/mesh, is admitted", () => {
    const rendered = join(dir, "rendered.yaml");
    writeFileSync(rendered, execFileSync(binary("kustomize"), ["build", MESH], { encoding: "utf8" }));
    const { status, lines } = validate(rendered);
    expect(status).toBe(0);
    expect(lines.sort()).toEqual(
      [`OK ${rendered} Schedule/${schedule.metadata.name}`, `OK ${rendered} Workflow/${workflow.metadata.name}`].sort(),
    );
  });

  const step = (o: KubeObject, name: string) => (o as Workflow).spec.templates.find((t) => t.name === name) as Template;
  it.each([
    [
      "a NetworkChaos with a duration of 'ten seconds'",
      "experiments/network-redis-delay.yaml",
      (o: KubeObject) => Object.assign((o as Chaos).spec, { duration: "ten seconds" }),
      'NetworkChaos/redis-delay: Spec.Duration: Invalid value: "ten seconds": parse duration field error: time: invalid duration "ten seconds"',
    ],
    [
      "a Workflow whose entry is no template",
      "workflow.yaml",
      (o: KubeObject) => Object.assign((o as Workflow).spec, { entry: "game-night" }),
      'Workflow/gateway-game-day: spec.entry: Invalid value: "game-night": can not find a template with name game-night',
    ],
    [
      "a Workflow step naming a child that does not exist",
      "workflow.yaml",
      (o: KubeObject) => step(o, "faults").children?.splice(1, 1, "redis-los"),
      'children[1]: Invalid value: "redis-los": can not find a template with name redis-los',
    ],
    [
      "a Workflow step with its own duration",
      "workflow.yaml",
      (o: KubeObject) => Object.assign(step(o, "redis-delay").networkChaos as ChaosSpec, { duration: "1m" }),
      "should not define duration in chaos when using Workflow, use Template#Deadline instead.",
    ],
    [
      "a Schedule with a cron expression in words",
      "schedule.yaml",
      (o: KubeObject) => Object.assign((o as Schedule).spec, { schedule: "weekdays at three" }),
      'spec.schedule: Invalid value: "weekdays at three": parse schedule field error:expected 5 to 6 fields, found 3',
    ],
    [
      "a misspelt field",
      "experiments/network-redis-delay.yaml",
      (o: KubeObject) => Object.assign((o as Chaos).spec, { directionn: "to" }),
      'json: unknown field "directionn"',
    ],
  ])("%s is INVALID, with the webhook's message", (_what, file, change, message) => {
    const path = brokenCopy(file, change);
    const { status, lines } = validate(path);
    expect(status).toBe(1);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(new RegExp(`^INVALID ${path} \\S+: `));
    expect(lines[0]).toContain(message);
  });

  it("an unknown kind is a usage error (exit 2) that names it", () => {
    const path = brokenCopy("experiments/network-redis-delay.yaml", (o) => Object.assign(o, { kind: "NetworkChoas" }));
    const { status, stderr } = validate(path);
    expect(status).toBe(2);
    expect(stderr).toContain('unknown kind "NetworkChoas"');
  });
});

describe("chaos/mesh against gateway/deploy/base (what no schema sees)", () => {
  const deployment = parse(readFileSync(join(BASE, "deployment.yaml"), "utf8")) as V1Deployment;
  const service = parse(readFileSync(join(BASE, "service.yaml"), "utf8")) as V1Service;
  const config = parse(readFileSync(join(BASE, "config.yaml"), "utf8")) as { dataStorage: { url: string } };
  const namespace = deployment.metadata?.namespace;
  const podLabels = deployment.spec?.template.metadata?.labels ?? {};
  const container = deployment.spec?.template.spec?.containers[0] as V1Container;

  /** Which workload a selector picks, or undefined when it picks none of them. */
  function workloadOf(selector: Selector): string | undefined {
    const labels = selector.labelSelectors ?? {};
    const equals = (want: Record<string, string>) => JSON.stringify(labels) === JSON.stringify(want);
    if (Object.keys(labels).length > 0 && Object.entries(labels).every(([k, v]) => podLabels[k] === v))
      return "gateway";
    if (equals(REDIS_MASTER)) return "redis master";
    if (equals(REDIS)) return "redis";
    if (equals(DATA_STORAGE)) return "data storage";
    return undefined;
  }

  it("every selector picks the gateway's pods (by the Deployment's pod-template labels) or the documented Redis / Data Storage labels, in the gateway's namespace", () => {
    expect(podLabels["app.kubernetes.io/name"]).toBe("gateway");
    for (const { where, kind, spec } of chaosSpecs()) {
      for (const selector of [spec.selector, spec.target?.selector].filter((s): s is Selector => s !== undefined)) {
        expect(Object.keys(selector).sort(), where).toEqual(["labelSelectors", "namespaces"]);
        expect(selector.namespaces, where).toEqual([namespace]);
        expect(workloadOf(selector), `${where}: ${JSON.stringify(selector.labelSelectors)}`).toBeDefined();
      }
      // Network, stress and I/O faults are injected into the gateway's own pods.
      if (["NetworkChaos", "StressChaos", "IOChaos"].includes(kind))
        expect(workloadOf(spec.selector), where).toBe("gateway");
      if (kind === "NetworkChaos") {
        expect(spec.target ? workloadOf(spec.target.selector) : spec.externalTargets, where).toBeDefined();
      }
    }
  });

  it("containers, the journal volume and the HTTP ports are the Deployment's and the config's", () => {
    const journal = container.volumeMounts?.find((m) => m.name === "audit-journal")?.mountPath;
    const dataStoragePort = Number(new URL(config.dataStorage.url).port);
    const gatewayPort = container.ports?.find((p) => p.name === "http")?.containerPort;
    for (const { where, kind, spec } of chaosSpecs()) {
      if (spec.containerNames) expect(spec.containerNames, where).toEqual([container.name]);
      if (kind === "IOChaos") {
        expect(spec.volumePath, where).toBe(journal);
        expect(spec.path, where).toBe(`${journal}/**/*`);
      }
      if (kind === "HTTPChaos") {
        const port = workloadOf(spec.selector) === "gateway" ? gatewayPort : dataStoragePort;
        expect(spec.port, where).toBe(port);
      }
    }
  });

  it("every StatusCheck asks the gateway Service for the readiness probe's path, and aborts the Workflow on failure", () => {
    const port = service.spec?.ports?.[0]?.port;
    const url = `http://${service.metadata?.name}.${service.metadata?.namespace}.svc:${port}${container.readinessProbe?.httpGet?.path}`;
    const checks = workflow.spec.templates.filter((t) => t.templateType === "StatusCheck");
    expect(checks.map((c) => c.statusCheck?.mode).sort()).toEqual(["Continuous", "Synchronous", "Synchronous"]);
    for (const check of checks) {
      expect(check.statusCheck?.http.url, check.name).toBe(url);
      expect(check.abortWithStatusCheck, check.name).toBe(true);
    }
  });

  it("chaos/mesh/README.md documents the labels the Redis and Data Storage pods need", () => {
    const readme = readFileSync(join(MESH, "README.md"), "utf8");
    for (const [k, v] of Object.entries({ ...REDIS_MASTER, ...DATA_STORAGE })) expect(readme).toContain(`${k}: ${v}`);
  });
});

describe("the Workflow and the Schedule run the experiments of chaos/mesh/experiments", () => {
  const templates = new Map(workflow.spec.templates.map((t) => [t.name, t]));

  it("every experiment is a Workflow step with the same spec (the step's deadline instead of the duration)", () => {
    for (const e of experiments) {
      const step = templates.get(e.metadata.name as string);
      expect(step?.templateType, e.metadata.name).toBe(e.kind);
      expect(step?.[fieldOf(e.kind)], e.metadata.name).toEqual(without(e.spec, "duration"));
    }
    expect(
      chaosSteps()
        .map((s) => s.name)
        .sort(),
    ).toEqual(experiments.map((e) => e.metadata.name).sort());
  });

  it("every template is reachable from the entry, and the continuous check lasts as long as the faults", () => {
    const reached = new Set<string>();
    const visit = (name: string) => {
      reached.add(name);
      for (const child of templates.get(name)?.children ?? []) visit(child);
    };
    visit(workflow.spec.entry);
    expect([...templates.keys()].filter((n) => !reached.has(n))).toEqual([]);

    const parallel = workflow.spec.templates.find((t) => t.templateType === "Parallel");
    const children = (parallel?.children ?? []).map((c) => templates.get(c) as Template);
    const check = children.find((c) => c.statusCheck?.mode === "Continuous");
    const faults = children.find((c) => c.templateType === "Serial")?.children ?? [];
    const faultSeconds = faults.reduce((sum, f) => sum + seconds(templates.get(f)?.deadline), 0);
    expect(faults).toHaveLength(experiments.length);
    expect(seconds(check?.deadline)).toBeGreaterThanOrEqual(faultSeconds);
  });

  it("the Schedule kills the Redis master as experiments/pod-redis-master-kill.yaml does", () => {
    const kill = experiments.find((e) => e.metadata.name === "redis-master-kill");
    expect(schedule.spec.type).toBe(kill?.kind);
    expect(schedule.spec[fieldOf(schedule.spec.type)]).toEqual(kill?.spec);
  });
});
