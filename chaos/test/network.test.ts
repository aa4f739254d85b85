// The network experiments against the shipped gateway (they hold) and against copies with the
// protection each checks removed (each fails, on the invariant that names the protection).
import { describe, expect, test } from "vitest";
import { patchedGateway } from "../../harness/src/components/patched-gateway.js";
import { KUBE_LATENCY_DEADLINE_MS, network } from "../experiments/network.js";
import type { RunParameters } from "../src/experiment.js";
import { type ExperimentResult, runExperiment } from "../src/runner.js";

const CI: RunParameters = { mode: "ci", seed: 1 };
/** One run: stack start, lead-in, faults, recovery, reconciling and teardown on a busy 2-core host. */
const RUN_MS = 300_000;

type Annotate = (message: string) => Promise<unknown>;

/** The run's failed invariants by name, with what they saw. */
function failed(result: ExperimentResult): string[] {
  return result.invariants.filter((c) => !c.ok).map((c) => `${c.name}: expected ${c.expected}, observed ${c.observed}`);
}

/**
 * Runs the experiment and annotates the test with what it saw, so a CI log explains a verdict.
 * A can-fail run names the one fault that meets the protection its patched gateway lacks and
 * runs only that one (the CI budget), against `gatewayMain`.
 */
async function run(
  name: string,
  annotate: Annotate,
  patched?: { gatewayMain: string; fault: string },
): Promise<ExperimentResult> {
  const build = network[name];
  if (!build) throw new Error(`no experiment ${name}`);
  const experiment = build(CI);
  if (patched) {
    experiment.faults = experiment.faults.filter((f) => f.name === patched.fault);
    if (experiment.faults.length === 0) throw new Error(`${name} has no fault named ${JSON.stringify(patched.fault)}`);
    experiment.invariants = experiment.invariants.filter(
      (i) => i.kind !== "status-during-fault" || i.fault === patched.fault,
    );
  }
  const result = await runExperiment(experiment, { gatewayMain: patched?.gatewayMain });
  const faults = result.faults.map(
    (f) => `${f.name}: window ${f.window?.ms ?? 0} ms ${JSON.stringify(f.errorsByStatus)}`,
  );
  const why = result.verdict === "Pass" ? "" : ` (${failed(result).join("; ") || result.reason})`;
  await annotate(
    `${result.verdict}${why}; answers ${JSON.stringify(result.load.byStatus)}; ` +
      `recovery ${result.recovery.ms ?? "none"} ms; ${faults.join("; ")}; figures ${JSON.stringify(result.figures)}`,
  );
  return result;
}

function expectPass(result: ExperimentResult): void {
  expect(result.reason, JSON.stringify({ failed: failed(result), faults: result.faults }, null, 1)).toBe("");
  expect(result.verdict).toBe("Pass");
}

/** The run failed, and on the invariant named (its check name starts with `name`). */
function expectFailedOn(result: ExperimentResult, name: string): void {
  expect(result.verdict).toBe("Fail");
  const hits = failed(result).filter((c) => c.startsWith(name));
  expect(hits, `failed: ${JSON.stringify(failed(result))}; reason: ${result.reason}`).not.toEqual([]);
}

// Known gateway defects this suite found (see chaos/README.md, "What the experiments found"); the
// experiments stay strict and `./taskw chaos:network` fails on them until the gateway is fixed, so
// their "holds" runs are skipped in `./taskw test` rather than weakened.
describe("network/redis-reset", () => {
  test.skip("holds: only 2xx or 503 + Retry-After, D1/D2 exact, Redis back by itself (skipped: gateway defect, a sighting whose Redis reply was cut is counted again via the Kubernetes API, D2 over by 1-48)", {
    timeout: RUN_MS,
  }, async ({ annotate }) => {
    expectPass(await run("network/redis-reset", annotate));
  });

  test("fails on the answers against a gateway that answers 500 when Redis fails instead of degrading", {
    timeout: RUN_MS,
  }, async ({ annotate }) => {
    const gatewayMain = patchedGateway("redis-500", [
      {
        file: "dedup.ts",
        find: `    if (this.redis.available()) {
      try {
        return await this.sightInRedis(signal, cfg);
      } catch (err) {
        if (!(err instanceof RedisUnavailableError)) throw err;
      }
    }
    return this.sightInKubernetes(signal, namespace);`,
        replace: "    return this.sightInRedis(signal, cfg);",
      },
      {
        file: "pipeline.ts",
        find: "return new ProblemError(503, `deduplication store unavailable: ",
        replace: "return new ProblemError(500, `deduplication store unavailable: ",
      },
    ]);
    expectFailedOn(
      await run("network/redis-reset", annotate, { gatewayMain, fault: "reset the Redis link (reset_peer)" }),
      "answers are only",
    );
  });
});

describe("network/kube-latency", () => {
  test.skip("holds: creations below the deadline, 504/503 quickly beyond it, steady again after (skipped: gateway defect, a creation the API server finished after the gateway gave up is adopted without its crd.created audit event and metric)", {
    timeout: RUN_MS,
  }, async ({ annotate }) => {
    expectPass(await run("network/kube-latency", annotate));
  });

  test("fails on max-latency against a gateway without its request deadline", { timeout: RUN_MS }, async ({
    annotate,
  }) => {
    const gatewayMain = patchedGateway("no-deadline", [
      {
        file: "routes/signals.ts",
        find: "return withDeadline(opts.pipeline.process(signal, { requestId: String(request.id) }), cfg.server.requestTimeoutMs);",
        replace: "return opts.pipeline.process(signal, { requestId: String(request.id) });",
      },
    ]);
    const result = await run("network/kube-latency", annotate, { gatewayMain, fault: "API server latency 5 s" });
    expectFailedOn(result, `no answer slower than ${KUBE_LATENCY_DEADLINE_MS + 1_000} ms`);
  });
});

describe("network/payload-corruption", () => {
  test("holds: every corrupted body 400 problem+json, valid traffic beside it unaffected", {
    timeout: RUN_MS,
  }, async ({ annotate }) => {
    expectPass(await run("network/payload-corruption", annotate));
  });

  test("fails on corrupt-rejected against a gateway whose JSON parse errors escape as 500", {
    timeout: RUN_MS,
  }, async ({ annotate }) => {
    const gatewayMain = patchedGateway("json-500", [
      {
        file: "json-body.ts",
        find: "throw new ProblemError(400, `request body is not valid JSON: ",
        replace: "throw new Error(`request body is not valid JSON: ",
      },
    ]);
    const result = await run("network/payload-corruption", annotate, {
      gatewayMain,
      fault: "truncated bodies, some cut on the wire (limit_data)",
    });
    expectFailedOn(result, "every corrupted body that got an answer got 400");
  });
});
