import { describe, expect, it } from "vitest";
import { kubeLatency } from "../experiments/network.js";
import { runExperiment } from "../src/runner.js";

describe("runExperiment", () => {
  it("fails an experiment whose faults use a link its stack does not proxy, before anything starts", async () => {
    const experiment = kubeLatency({ mode: "ci", seed: 1 });
    experiment.stack.links = ["redis", "ingress"];
    const started = Date.now();
    const result = await runExperiment(experiment);
    expect(result.verdict).toBe("Fail");
    expect(result.reason).toContain("uses link(s) kube, which its stack.links (redis, ingress) leave out");
    expect(result.faults).toEqual([]);
    expect(result.probes).toEqual([]);
    expect(Date.now() - started).toBeLessThan(1_000);
  });
});
