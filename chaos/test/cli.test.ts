// The chaos entry point refuses bad input before anything starts: a message naming the field and
// the reason, exit code 2, no stack, no results folder.
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { repoRoot } from "../../harness/src/paths.js";

function run(...args: string[]) {
  const r = spawnSync(process.execPath, ["--import", "tsx", join(repoRoot, "chaos", "suite", "run.ts"), ...args], {
    cwd: repoRoot,
    encoding: "utf8",
    timeout: 30_000,
  });
  return { code: r.status, stderr: r.stderr, stdout: r.stdout };
}

describe("chaos/suite/run.ts", () => {
  it.each([
    [[], "missing the suite or experiment to run"],
    [["storm"], "unknown suite or experiment 'storm'"],
    [["network", "--rate", "0"], "--rate: must be a whole number of signals per second, 1..99999 (got: 0)"],
    [["network", "--rate"], "--rate: missing value"],
    [["redis-failover", "--kills", "many"], "--kills: must be a whole number of kills, 1..999 (got: many)"],
    [["infra", "--duration", "10"], "--duration: must be a duration like 30s, 2m or 10m (got: 10)"],
    [["infra", "--duration", "500ms"], "--duration: must be at least 1s (got: 500 ms)"],
    [["all", "--mode", "fast"], "--mode: must be ci or full (got: fast)"],
    [["all", "--speed", "1"], "unknown flag '--speed'"],
  ])("%j: %s", (args, message) => {
    const r = run(...args);
    expect(r.stderr).toContain(`error: ${message}`);
    expect(r.stderr).toContain("usage: run.ts");
    expect(r.stdout).toBe("");
    expect(r.code).toBe(2);
  });
});
