// e2e:cluster, run as a user runs it, against "an existing installation": a local stack
// started here and then treated as somebody else's cluster (its kubeconfig, the gateway's
// URL with bearer auth on, Data Storage and Redis URLs, the stand-ins as its controllers).
// The suite starts no component of its own for the scenarios; a second run of the same
// scenario passes too (a long-lived gateway has seen the first run's signals).
import { spawnSync } from "node:child_process";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { StartedRedis } from "../../harness/src/components/redis.js";
import {
  AIAnalysisStandIn,
  EventExporterStandIn,
  OrchestratorStandIn,
  STANDIN_CRDS,
  type StartedStandIn,
  WorkflowExecutionStandIn,
} from "../../harness/src/components/standins.js";
import { repoRoot, scratchDir } from "../../harness/src/paths.js";
import { LocalStack, type StartedLocalStack } from "../../harness/src/stack.js";

describe("e2e:cluster against an installation it did not start", () => {
  let stack: StartedLocalStack;
  let controllers: StartedStandIn[] = [];
  let dir: string;

  beforeAll(async () => {
    dir = scratchDir("e2e-cluster");
    stack = await new LocalStack()
      .withCrds(STANDIN_CRDS)
      .withGatewayConfig({ auth: { enabled: true } })
      .start();
    const gateway = stack.gateway?.getUrl() as string;
    const exporterToken = join(dir, "exporter-token");
    writeFileSync(exporterToken, await stack.kube.serviceAccountToken("kubernaut-system", "standin-event-exporter"));
    controllers = await Promise.all([
      new OrchestratorStandIn(stack.kube).withPhaseTimeout("60s").start(),
      new AIAnalysisStandIn(stack.kube).withStep("200ms").start(),
      new WorkflowExecutionStandIn(stack.kube).withStep("200ms").start(),
      new EventExporterStandIn(stack.kube).withGateway(gateway, exporterToken).start(),
    ]);
  });
  afterAll(async () => {
    await Promise.allSettled(controllers.map((c) => c.stop()));
    await stack?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const runCluster = (...extra: string[]) => {
    const results = join(dir, "results");
    const r = spawnSync(
      process.execPath,
      [
        "--import",
        "tsx",
        "e2e/suite/run.ts",
        "cluster",
        "--kubeconfig",
        stack.kube.getKubeconfigPath(),
        "--gateway-url",
        stack.gateway?.getUrl() as string,
        "--data-storage-url",
        stack.dataStorage.getUrl(),
        "--redis-url",
        (stack.redis as StartedRedis).getConnectionUrl(),
        ...extra,
      ],
      { cwd: repoRoot, encoding: "utf8", env: { ...process.env, E2E_RESULTS_DIR: results }, timeout: 300_000 },
    );
    const summary = JSON.parse(readFileSync(join(results, "latest", "summary.json"), "utf8")) as {
      pass: boolean;
      scenarios: { scenario: number; state: string }[];
    };
    return { ...r, summary };
  };

  it("runs the cluster's scenarios (1, 2, 3) through its gateway and controllers", () => {
    const r = runCluster();
    expect(
      r.summary.scenarios.map((s) => [s.scenario, s.state]),
      r.stdout.slice(-3000),
    ).toEqual([
      [1, "passed"],
      [2, "passed"],
      [3, "passed"],
    ]);
    expect(r.status).toBe(0);
  }, 300_000);

  it("a second run of the same scenario passes too: its signals are new to the gateway", () => {
    const r = runCluster("--scenario", "3");
    expect(
      r.summary.scenarios.map((s) => s.state),
      r.stdout.slice(-3000),
    ).toEqual(["passed"]);
    expect(r.status).toBe(0);
  }, 120_000);

  it("a scenario that needs the local stack is refused before anything runs, naming it", () => {
    const r = spawnSync(
      process.execPath,
      ["--import", "tsx", "e2e/suite/run.ts", "cluster", "--kubeconfig", stack.kube.getKubeconfigPath()].concat([
        "--gateway-url",
        "http://127.0.0.1:1",
        "--scenario",
        "4",
      ]),
      { cwd: repoRoot, encoding: "utf8" },
    );
    expect(r.status).toBe(2);
    expect(r.stderr).toContain("--scenario: 4 need the local stack (e2e:lifecycle); on a cluster: 1,2,3");
  });
});
