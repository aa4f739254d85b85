// The load accounting can fail: what the generator counted from the gateway's answers is
// reconciled against real state (RemediationRequests, Redis, audit, Prometheus). Against the
// real gateway every check holds; behind a proxy that loses every tenth deduplication (and
// answers "duplicate" itself) the Redis and occurrence-count checks fail by exactly the loss.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Check, type GeneratorCounts, reconcile } from "../../harness/src/invariants.js";
import { LocalStack, type StartedLocalStack } from "../../harness/src/stack.js";
import { NAMESPACES } from "../lib/traffic.ts";
import { type LossyProxy, startLossyProxy } from "./support/lossy-proxy.js";
import { runCli } from "./support/run-cli.js";

const SCRIPT = "load/test/fixtures/accounting.ts";
// A small pool so most requests are duplicates; storms are off in the gateway and the traffic.
const TRAFFIC = { RATE: "50", DURATION: "5s", POOL_SIZE: "20", STORM_EVERY: "0" };

let stack: StartedLocalStack;
let proxy: LossyProxy | undefined;

beforeAll(async () => {
  stack = await new LocalStack()
    .withNamespaces(Object.fromEntries(NAMESPACES.map((ns) => [ns, { environment: "production" }])))
    .withGatewayConfig({ rateLimit: { enabled: false }, processing: { storm: { enabled: false } } })
    .start();
});

afterAll(async () => {
  await proxy?.close();
  await stack?.stop();
});

/** Drives the fixture at `target`; the generator's counts as read from its summary.json. */
async function drive(target: string, seed: string): Promise<GeneratorCounts> {
  const run = await runCli(SCRIPT, { TARGET: target, TESTID: `accounting-${seed}`, SEED: seed, ...TRAFFIC });
  expect(run.code, run.stderr).toBe(0);
  const count = (metric: string) => run.summary?.metrics[metric]?.values.count ?? 0;
  return {
    created: count("signals_created"),
    duplicate: count("signals_duplicate"),
    stormAggregated: count("signals_storm_aggregated"),
    unanswered: count("signals_unanswered"),
  };
}

function plus(a: GeneratorCounts, b: GeneratorCounts): GeneratorCounts {
  return {
    created: a.created + b.created,
    duplicate: a.duplicate + b.duplicate,
    stormAggregated: a.stormAggregated + b.stormAggregated,
    unanswered: (a.unanswered ?? 0) + (b.unanswered ?? 0),
  };
}

function find(checks: Check[], prefix: string): Check {
  const check = checks.find((c) => c.name.startsWith(prefix));
  if (!check) throw new Error(`no check starting with '${prefix}' in: ${checks.map((c) => c.name).join("; ")}`);
  return check;
}

const failing = (checks: Check[]) => checks.filter((c) => !c.ok);

describe("load accounting against real state", () => {
  // Both runs share the stack: the lossy run is reconciled with the counts of both runs, which is
  // exactly what the state holds once the control run has reconciled.
  let control: GeneratorCounts | undefined;

  it("reconciles every answer of the real gateway", async () => {
    const counts = await drive(stack.gateway?.getUrl() ?? "", "1");
    expect(counts.created).toBeGreaterThan(0);
    expect(counts.duplicate).toBeGreaterThan(100);
    const checks = await reconcile(stack, counts, { stallMs: 10_000, maxMs: 30_000 });
    expect(failing(checks)).toEqual([]);
    expect(checks.length).toBeGreaterThanOrEqual(9);
    control = counts;
  }, 60_000);

  it("catches a gateway that loses every tenth deduplication", async () => {
    if (!control) throw new Error("the control run did not reconcile; the shared state is unknown");
    proxy = await startLossyProxy(stack.gateway?.getUrl() ?? "", 10);
    const counts = await drive(proxy.url, "2");
    const lost = proxy.swallowed;
    expect(lost).toBeGreaterThanOrEqual(10);

    const seen = plus(control, counts);
    const checks = await reconcile(stack, seen, { stallMs: 10_000, maxMs: 30_000 });
    const occurrences = find(checks, "D2/D3");
    const redis = find(checks, "Redis:");
    expect(occurrences.ok).toBe(false);
    expect(redis.ok).toBe(false);
    // Each lost deduplication is missing from the real state, and nothing else is (exactly so
    // when every request was answered; an unanswered one may have been processed or not).
    for (const check of [occurrences, redis]) {
      const deficit = Number.parseInt(String(check.expected), 10) - Number(check.observed);
      expect(deficit, JSON.stringify(check)).toBeGreaterThanOrEqual(lost - (seen.unanswered ?? 0));
      expect(deficit, JSON.stringify(check)).toBeLessThanOrEqual(lost);
    }
    expect(find(checks, "D1").ok).toBe(true);
    expect(find(checks, "RemediationRequests created").ok).toBe(true);
  }, 60_000);
});
