import { defineConfig } from "vitest/config";

const FAILOVER_UNDER_TRAFFIC = "gateway/test/pipeline/sentinel.test.ts";
/** The lifecycle scenarios, their can-fail runs and e2e:cluster's run: each starts a whole stack, several put it under load. */
const E2E_SCENARIOS = ["e2e/scenarios/**/*.test.ts", "e2e/test/can-fail*.test.ts", "e2e/test/cluster.test.ts"];
/** Chaos tests that run no experiment (manifests, flags, checks, probes): beside the other suites. */
const CHAOS_WITHOUT_LOAD = "chaos/test/{mesh,cli,checks,probes,runner}.test.ts";
/** A real load run, then its review in Chromium. */
const REVIEW = "grafana/test/review.test.ts";

const shared = {
  // Integration tests start real processes; on 2 cores two files at a time is the sweet spot.
  maxWorkers: 2,
  testTimeout: 60_000,
  hookTimeout: 120_000,
};

export default defineConfig({
  test: {
    // The JSON report is what .ci/run counts.
    reporters: ["default", "json"],
    outputFile: { json: "results/test/vitest.json" },
    projects: [
      {
        test: {
          ...shared,
          name: "suites",
          include: ["{gateway,harness,standins,load,e2e,grafana}/**/*.test.ts", CHAOS_WITHOUT_LOAD],
          exclude: [FAILOVER_UNDER_TRAFFIC, ...E2E_SCENARIOS, REVIEW, "**/node_modules/**"],
        },
      },
      {
        // Beside other suites on two cores this test saw an acknowledged occurrence go uncounted
        // across the failover (D2 6 vs 5): the gateway confirmed writes on one replica of two
        // (fixed, README "Chaos"). It still runs alone: a failover under traffic on a shared
        // machine is what the chaos run measures, not this test.
        test: { ...shared, name: "failover", include: [FAILOVER_UNDER_TRAFFIC], sequence: { groupOrder: 2 } },
      },
      {
        // One scenario at a time, after the chaos experiments: under load on 2 cores a neighbour
        // would decide their latency bounds and drain times, not the gateway.
        test: {
          ...shared,
          maxWorkers: 1,
          testTimeout: 180_000,
          name: "e2e",
          include: E2E_SCENARIOS,
          sequence: { groupOrder: 3 },
        },
      },
      {
        // Chaos experiments load both cores for minutes: they run after the rest, so the timing
        // tests of the other suites never share the machine with them, and one file at a time
        // (two experiments side by side miss their latency and recovery bounds on 2 cores).
        test: {
          ...shared,
          maxWorkers: 1,
          name: "chaos",
          include: ["chaos/**/*.test.ts"],
          exclude: [CHAOS_WITHOUT_LOAD, "**/node_modules/**"],
          sequence: { groupOrder: 1 },
        },
      },
      {
        // Last and alone: its load run's warm-up creates thousands of requests, which would
        // decide a neighbour's timing bounds.
        test: {
          ...shared,
          maxWorkers: 1,
          testTimeout: 150_000,
          name: "review",
          include: [REVIEW],
          sequence: { groupOrder: 4 },
        },
      },
    ],
  },
});
