// Scenario 8: Redis failover with zero data loss. The chaos experiment
// infra/redis-failover in its short mode (three SIGKILLs of the Sentinel master
// under load, replicas lagging): one implementation for both suites. Its
// can-fail run (a gateway that answers before a replica has the write) is the
// chaos suite's (chaos/test/redis-failover.test.ts).
import { redisFailover } from "../../chaos/experiments/infra.js";
import { expect, scenario } from "../src/dsl.js";

scenario(
  "8. Redis failover with zero data loss (chaos infra/redis-failover, short mode)",
  async ({ when, then }) => {
    // 600/s as in the chaos suite's CI run: at 1000/s this stack leaves the 2 cores no idle time.
    const result = await when.chaosExperimentRuns(redisFailover({ mode: "ci", seed: 1, rate: 600 }));
    await then.holds(
      "each kill measured, no accepted signal lost, no duplicate request",
      async () => {
        expect(result.reason).toBe("");
        expect(result.verdict).toBe("Pass");
        expect(result.faults).toHaveLength(3);
        return result.invariants.map((c) => `${c.name}: ${c.observed}`);
      },
      0,
    );
  },
  400_000,
);
