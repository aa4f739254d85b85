import { describe, expect, it } from "vitest";
import { patchedGateway } from "../../harness/src/components/patched-gateway.js";
import { redisFailover } from "../experiments/infra.js";
import { runExperiment } from "../src/runner.js";

const progress = (line: string) => process.stdout.write(`${new Date().toISOString().slice(11, 19)} ${line}\n`);
const failed = (r: Awaited<ReturnType<typeof runExperiment>>) => r.invariants.filter((c) => !c.ok).map((c) => c.name);

describe("infra/redis-failover", () => {
  // Gateway finding: in 1 of 3 clean-clone CI runs, 1 of 8 CLI runs on a loaded machine and 2 of 7
  // runs on 2026-12-02 the answers kept flickering to 503 after the last kill, so the recovery
  // check ("all 2xx again within 30 s") failed; D1, D2 per fingerprint and audit held. All of them
  // the in-flight bound: a WAIT for both replicas takes 110-165 ms at 1000/s and blocks the one Redis
  // connection (README, "Chaos"). Skipped until that is fixed; `./taskw chaos:redis-failover` shows it.
  it.skip("holds: each kill's unavailability window measured, no accepted signal lost, no duplicate request (skipped: gateway finding, 503s from the in-flight bound after the last kill in 2 of 7 runs, WAIT blocking the Redis connection)", async () => {
    const result = await runExperiment(redisFailover({ mode: "ci", seed: 1 }), { progress });
    expect(result.reason).toBe("");
    expect(result.verdict).toBe("Pass");
    expect(result.faults).toHaveLength(3);
    for (const kill of result.faults) expect(kill.removedAt).toBeGreaterThan(kill.injectedAt);
    expect(result.load.counts.created).toBeGreaterThan(0);
  }, 400_000);

  it("catches the failover loss of a gateway that answers before a replica has the write", async () => {
    // The classic asynchronous-replication loss: no WAIT for a replica before answering.
    const main = patchedGateway("no-replica-ack", [
      {
        file: "redis-link.ts",
        find: "if (!this.replicated) return this.run(operation, call);",
        replace: "return this.run(operation, call);",
      },
    ]);
    // One kill is enough: it drops the half second of writes the replicas missed.
    const result = await runExperiment(redisFailover({ mode: "ci", seed: 1, kills: 1 }), {
      progress,
      gatewayMain: main,
    });
    progress(`patched gateway: ${result.verdict}: ${result.reason}`);
    expect(result.verdict).toBe("Fail");
    // The writes the replicas missed were acknowledged all the same: counts short of the 2xx answers.
    expect(failed(result).some((name) => name.startsWith("D2"))).toBe(true);
  }, 400_000);
});
