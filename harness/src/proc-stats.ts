// What a process costs, read from /proc (Linux only, like the rest of the local stack):
// CPU time (user + system), resident memory, process groups, for benchmarks, load-run reports
// and the supervisor.
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";

let ticksPerSecond: number | undefined;

/**
 * The fields of /proc/<pid>/stat after the command name, which may contain spaces:
 * state(0) ppid(1) pgrp(2) ... utime(11) stime(12) ... nice(16).
 */
export function statFields(pid: number): string[] {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ");
}

/** `root` and its descendants by parent pid, wherever their process group (those that exit meanwhile are left out). */
export function processTree(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const parent = Number(statFields(Number(entry))[1]);
      children.set(parent, [...(children.get(parent) ?? []), Number(entry)]);
    } catch {
      // exited meanwhile
    }
  }
  const tree: number[] = [];
  for (const queue = [root]; queue.length > 0; ) {
    const pid = queue.shift() as number;
    tree.push(pid);
    queue.push(...(children.get(pid) ?? []));
  }
  return tree;
}

/** Pids of the processes in process group `pgid` (those that exit meanwhile are left out). */
export function processGroup(pgid: number): number[] {
  return readdirSync("/proc")
    .filter((entry) => /^\d+$/.test(entry))
    .map(Number)
    .filter((pid) => {
      try {
        return Number(statFields(pid)[2]) === pgid;
      } catch {
        return false;
      }
    });
}

/** CPU seconds the process has used so far (its own threads; not its children). */
export function cpuSeconds(pid: number): number {
  ticksPerSecond ??= Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
  const fields = statFields(pid);
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) throw new Error(`/proc/${pid}/stat: unexpected format`);
  return (utime + stime) / ticksPerSecond;
}

/** CPU seconds of several processes at one instant, by name. */
export function cpuSnapshot(pids: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(pids).map(([name, pid]) => [name, cpuSeconds(pid)]));
}

/** Average cores each process used over `windowMs`. */
export async function coresOver(pids: Record<string, number>, windowMs: number): Promise<Record<string, number>> {
  const before = cpuSnapshot(pids);
  const started = performance.now();
  await new Promise((resolve) => setTimeout(resolve, windowMs));
  const after = cpuSnapshot(pids);
  const seconds = (performance.now() - started) / 1000;
  return Object.fromEntries(
    Object.keys(pids).map((name) => [name, ((after[name] ?? 0) - (before[name] ?? 0)) / seconds]),
  );
}

/** Resident memory of a process in bytes (0 when it is gone). */
export function rssBytes(pid: number): number {
  try {
    const kb = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1];
    return Number(kb ?? 0) * 1024;
  } catch {
    return 0;
  }
}
