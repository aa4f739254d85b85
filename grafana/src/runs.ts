// A finished load or chaos run named by a user (RUN=<run-id>): `grafana:up` opens its TSDB,
// `grafana:report` reviews it.
import { existsSync, readdirSync, realpathSync } from "node:fs";
import { basename, join } from "node:path";
import { UsageError } from "../../harness/src/cli-flags.js";
import { repoRoot } from "../../harness/src/paths.js";

/** Where each suite keeps its runs; every run keeps its Prometheus TSDB in `prometheus/`. */
const SUITES = ["load", "chaos"] as const;
export type Suite = (typeof SUITES)[number];

export interface RunFolder {
  suite: Suite;
  id: string;
  dir: string;
}

/** A run named by RUN, with its TSDB: anything else is a UsageError naming RUN and why. */
export function findRun(name: string): RunFolder {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name))
    throw new UsageError(`RUN=${name}: not a run id (a folder name under results/load/ or results/chaos/)`);
  const found = SUITES.flatMap((suite) => {
    const dir = join(repoRoot, "results", suite, name);
    // `latest` is a symlink: the run it points at is the one opened.
    return existsSync(dir) ? [{ suite, id: basename(realpathSync(dir)), dir: realpathSync(dir) }] : [];
  });
  const [run, other] = found;
  if (!run) throw new UsageError(`RUN=${name}: no run folder results/load/${name} or results/chaos/${name}`);
  if (other)
    throw new UsageError(
      `RUN=${name}: names results/load/${run.id} and results/chaos/${other.id}; give the run id itself`,
    );
  const tsdb = join(run.dir, "prometheus");
  const blocks = existsSync(tsdb) ? readdirSync(tsdb).filter((e) => existsSync(join(tsdb, e, "meta.json"))) : [];
  if (!existsSync(join(tsdb, "wal")) && blocks.length === 0)
    throw new UsageError(
      `RUN=${name}: results/${run.suite}/${run.id} holds no Prometheus TSDB (prometheus/ with wal/ or blocks): ` +
        "load runs with TARGET= start no Prometheus, and runs older than this keep none",
    );
  return run;
}
