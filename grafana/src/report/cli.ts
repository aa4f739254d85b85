// `task grafana:report RUN=<run-id>`: the review report of a finished load or chaos run, from
// the TSDB it kept (report.html, report.png, panels.json, review.json in its folder). Exit 0
// when every panel was drawn with data, 1 naming those that were not, 2 on a bad RUN.
//   npx tsx grafana/src/report/cli.ts --run <run-id>
import { join } from "node:path";
import { parseFlags, runCli, UsageError } from "../../../harness/src/cli-flags.js";
import { findRun } from "../runs.js";
import { reviewProblems, reviewRun } from "./review.js";

async function main(): Promise<number> {
  let name: string | undefined;
  parseFlags(process.argv.slice(2), { "--run": [/./, "a run id", (v) => (name = v)] });
  if (name === undefined)
    throw new UsageError("RUN=<run-id> is required (a folder under results/load/ or results/chaos/)");
  const run = findRun(name);
  const review = await reviewRun(run);
  for (const problem of reviewProblems(review)) process.stdout.write(`REVIEW: ${problem}\n`);
  process.stdout.write(
    `${review.pass ? "PASS" : "FAIL"}: ${review.panels.length} panels; report ${join(run.dir, review.files.html)}${review.files.screenshot ? `, screenshot ${join(run.dir, review.files.screenshot)}` : ""}\n`,
  );
  return review.pass ? 0 : 1;
}

await runCli(main, "usage: cli.ts --run <run-id>");
