// The probes' LitmusChaos semantics, against a real HTTP server and real commands.
import { createServer, type Server } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eventually } from "../../harness/src/poll.js";
import type { Probe } from "../src/experiment.js";
import { evaluateAll, evaluateDuring, fillUrl, type ProbeContext } from "../src/probes.js";

let server: Server;
let status = 200;
let hits = 0;
const ctx = (): ProbeContext => ({
  urls: { gateway: `http://127.0.0.1:${(server.address() as { port: number }).port}` },
  prometheus: { query: async (q) => (q === "up" ? [{ metric: {}, timestamp: 0, value: 1 }] : []) },
  kube: {
    request: async (_m: string, path: string) => ({
      status: 200,
      body: JSON.stringify({ items: path.includes("labelSelector") ? [] : [{}, {}] }),
    }),
  } as unknown as ProbeContext["kube"],
});

beforeAll(async () => {
  server = createServer((_req, res) => {
    hits++;
    res.statusCode = status;
    res.end();
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

const run = { timeoutMs: 1_000, intervalMs: 10, retries: 2 };
const http = (criteria: Extract<Probe, { type: "http" }>["criteria"], mode: Probe["mode"] = "SOT"): Probe => ({
  name: "http",
  type: "http",
  mode,
  url: "{gateway}/readyz",
  criteria,
  runProperties: { ...run, pollingIntervalMs: 20 },
});

describe("probes", () => {
  it("http: ==, != and oneOf on the status code, with what it saw", async () => {
    status = 503;
    const [eq, ne, oneOf] = await Promise.all([
      evaluateAll([http({ op: "==", code: 200 })], "SOT", ctx()),
      evaluateAll([http({ op: "!=", code: 200 })], "SOT", ctx()),
      evaluateAll([http({ op: "oneOf", codes: [200, 503] })], "SOT", ctx()),
    ]);
    expect(eq[0]).toMatchObject({
      verdict: "Failed",
      lastSeen: "status 503",
      message: "wanted status == 200, saw status 503",
    });
    expect(ne[0]?.verdict).toBe("Passed");
    expect(oneOf[0]?.verdict).toBe("Passed");
  });

  it("retries: a failing evaluation makes 1 + retries attempts; one success is enough", async () => {
    status = 500;
    hits = 0;
    await evaluateAll([http({ op: "==", code: 200 })], "SOT", ctx());
    expect(hits).toBe(3);
  });

  it("modes: Edge runs in SOT and EOT, SOT only before, EOT only after", async () => {
    status = 200;
    const probes = [http({ op: "==", code: 200 }, "Edge"), { ...http({ op: "==", code: 200 }, "SOT"), name: "sot" }];
    expect((await evaluateAll(probes, "SOT", ctx())).map((v) => v.name)).toEqual(["http", "sot"]);
    expect((await evaluateAll(probes, "EOT", ctx())).map((v) => v.name)).toEqual(["http"]);
  });

  it("Continuous: evaluated every polling interval; one failed evaluation fails the probe", async () => {
    status = 200;
    hits = 0;
    const during = evaluateDuring([http({ op: "==", code: 200 }, "Continuous")], "Continuous", ctx());
    await eventually(() => hits >= 3, { what: "three passing evaluations", intervalMs: 5 });
    status = 500;
    const failingFrom = hits;
    // 1 + retries failing attempts in a row: at least one evaluation failed.
    await eventually(() => hits >= failingFrom + 4, { what: "failing attempts", intervalMs: 5 });
    status = 200;
    const [verdict] = await during.stop();
    expect(verdict?.evaluations).toBeGreaterThan(3);
    expect(verdict?.failedEvaluations).toBeGreaterThan(0);
    expect(verdict?.verdict).toBe("Failed");
  });

  it("prom, k8s and cmd probes", async () => {
    const probes: Probe[] = [
      { name: "prom", type: "prom", mode: "SOT", query: "up", comparator: { op: ">=", value: 1 }, runProperties: run },
      {
        name: "prom-empty",
        type: "prom",
        mode: "SOT",
        query: "nothing",
        comparator: { op: ">=", value: 1 },
        runProperties: run,
      },
      {
        name: "k8s-count",
        type: "k8s",
        mode: "SOT",
        group: "kubernaut.ai",
        version: "v1alpha1",
        plural: "remediationrequests",
        operation: { count: { op: "==", value: 2 } },
        runProperties: run,
      },
      {
        name: "k8s-absent",
        type: "k8s",
        mode: "SOT",
        group: "",
        version: "v1",
        plural: "pods",
        labelSelector: "app=x",
        operation: "absent",
        runProperties: run,
      },
      {
        name: "cmd",
        type: "cmd",
        mode: "SOT",
        command: "echo",
        args: ["ready"],
        expect: { exitCode: 0, stdoutIncludes: "ready" },
        runProperties: run,
      },
      { name: "cmd-fails", type: "cmd", mode: "SOT", command: "false", expect: { exitCode: 0 }, runProperties: run },
    ];
    const verdicts = Object.fromEntries((await evaluateAll(probes, "SOT", ctx())).map((v) => [v.name, v]));
    expect(verdicts.prom?.verdict).toBe("Passed");
    expect(verdicts["prom-empty"]).toMatchObject({ verdict: "Failed", lastSeen: "no sample" });
    expect(verdicts["k8s-count"]?.verdict).toBe("Passed");
    expect(verdicts["k8s-absent"]?.verdict).toBe("Passed");
    expect(verdicts.cmd?.verdict).toBe("Passed");
    expect(verdicts["cmd-fails"]).toMatchObject({ verdict: "Failed", lastSeen: 'exit 1, stdout ""' });
  });

  it("an attempt past its timeout fails with what it waited for", async () => {
    const slow: Probe = {
      name: "slow",
      type: "cmd",
      mode: "SOT",
      command: "sleep",
      args: ["5"],
      expect: { exitCode: 0 },
      runProperties: { timeoutMs: 100, intervalMs: 10, retries: 0 },
    };
    const [v] = await evaluateAll([slow], "SOT", ctx());
    expect(v?.verdict).toBe("Failed");
    expect(v?.lastSeen).toMatch(/sleep/);
  });

  it("a URL naming an unknown endpoint says which ones exist", () => {
    expect(() => fillUrl("{nope}/x", { gateway: "http://a" })).toThrow("no endpoint named {nope} (known: gateway)");
  });
});
