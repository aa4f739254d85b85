import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["{gateway,harness,chaos,load,e2e,grafana}/**/*.test.ts"],
    // Integration tests start real processes; on 2 cores two files at a time is the sweet spot.
    maxWorkers: 2,
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // The JSON report is what .ci/run counts.
    reporters: ["default", "json"],
    outputFile: { json: "results/test/vitest.json" },
  },
});
