// Runs the embedded runner's CLI as a user would (a child process) and reads what it wrote.
import { execFile } from "node:child_process";
import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { repoRoot, scratchDir } from "../../../harness/src/paths.js";
import type { SummaryData } from "../../lib/k6-summary.js";

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
  wallMs: number;
  /** What the script's handleSummary wrote to RESULTS_DIR/summary.json, when it did. */
  summary?: SummaryData;
}

/**
 * `node --import tsx load/runner/cli.ts run <script> -e K=V... <extra>`; RESULTS_DIR points at a
 * fresh folder. `processEnv` is added to the runner's own environment (K6_* settings).
 */
export async function runCli(
  script: string,
  env: Record<string, string>,
  extra: string[] = [],
  processEnv: Record<string, string> = {},
): Promise<CliRun> {
  const results = scratchDir("load-cli");
  const args = ["--import", "tsx", join(repoRoot, "load/runner/cli.ts"), "run", join(repoRoot, script)];
  for (const [k, v] of Object.entries({ RESULTS_DIR: results, ...env })) args.push("-e", `${k}=${v}`);
  args.push(...extra);
  const started = performance.now();
  const { code, stdout, stderr } = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    const options = { cwd: repoRoot, env: { ...process.env, ...processEnv }, timeout: 120_000, maxBuffer: 64 << 20 };
    execFile(process.execPath, args, options, (err, stdout, stderr) => {
      const status = err && typeof err.code === "number" ? err.code : err ? -1 : 0;
      resolve({ code: status, stdout, stderr });
    });
  });
  const wallMs = performance.now() - started;
  let summary: SummaryData | undefined;
  try {
    summary = JSON.parse(readFileSync(join(results, "summary.json"), "utf8")) as SummaryData;
  } catch {
    summary = undefined;
  }
  rmSync(results, { recursive: true, force: true });
  return { code, stdout, stderr, wallMs, summary };
}

/** A metric's values from the summary, failing with the runner's output when it is missing. */
export function values(run: CliRun, metric: string): Record<string, number> {
  const m = run.summary?.metrics[metric];
  if (!m) throw new Error(`metric ${metric} missing from summary (exit ${run.code}); stderr:\n${run.stderr}`);
  return m.values;
}
