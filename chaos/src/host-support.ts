// What an experiment needs from the host, checked before anything starts: where a machine lacks it
// the experiment reports "not runnable here: <what>" and fails; it never passes silently.
import { type Controller, cgroupSupport } from "../../harness/src/host/cgroup.js";
import { tmpfsSupport } from "../../harness/src/host/tmpfs.js";
import type { Experiment } from "./experiment.js";

/** How the host is asked: each answers why it cannot, or undefined when it can. */
export interface HostProbes {
  root(): string | undefined;
  cgroup(controller: Controller): string | undefined;
  tmpfs(): string | undefined;
}

export const thisHost: HostProbes = {
  root: () => (process.getuid?.() === 0 ? undefined : "needs root"),
  cgroup: cgroupSupport,
  tmpfs: tmpfsSupport,
};

/** What the host lacks of `requires`, in words (empty: runnable here). */
export function hostSupport(requires: NonNullable<Experiment["requires"]>, host: HostProbes = thisHost): string[] {
  const missing: string[] = [];
  for (const need of requires) {
    const reason =
      need === "root"
        ? host.root()
        : need === "tmpfs"
          ? host.tmpfs()
          : host.cgroup(need === "cgroup-v1-memory" ? "memory" : "cpu");
    if (reason) missing.push(`${need}: ${reason}`);
  }
  return missing;
}
