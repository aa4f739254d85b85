// cgroup v1 groups made for one run, to squeeze a component's memory or CPU the way a
// Kubernetes limit would. Each group is named gw-chaos-<creator pid>-<name> at the top of its
// controller's hierarchy, is removed by remove() or on Ctrl-C (deferCleanup), and
// sweepStaleCgroups() removes what a SIGKILLed run left.
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, statSync, writeFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import { eventually } from "../poll.js";
import { processGroup } from "../proc-stats.js";
import { deferCleanup, isAlive } from "../supervisor.js";

export type Controller = "memory" | "cpu";

const PREFIX = "gw-chaos-";
const NAME = /^[a-z0-9][a-z0-9_-]{0,47}$/;
const STALE = new RegExp(`^${PREFIX}(\\d+)-`);
const CFS_PERIOD_US = 100_000;
// The kernel refuses a CFS quota below 1 ms.
const MIN_QUOTA_US = 1000;

interface Mount {
  source: string;
  type: string;
  point: string;
  options: string[];
}

/** /proc/mounts, with the octal escapes (\040 for a space) decoded. */
export function procMounts(): Mount[] {
  const decode = (s: string) =>
    s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8)));
  return readFileSync("/proc/mounts", "utf8")
    .split("\n")
    .filter(Boolean)
    .map((line) => {
      const [source = "", point = "", type = "", options = ""] = line.split(" ");
      return { source: decode(source), type, point: decode(point), options: options.split(",") };
    });
}

/** Where the v1 hierarchy of a controller is mounted (e.g. /sys/fs/cgroup/cpu or /sys/fs/cgroup/cpu,cpuacct). */
function hierarchyRoot(controller: Controller): Mount | undefined {
  return procMounts().find((m) => m.type === "cgroup" && m.options.includes(controller));
}

/**
 * Why this host cannot give a run a cgroup of `controller`, or undefined when it can; an
 * experiment reports "not runnable here: <reason>" instead of passing silently.
 */
export function cgroupSupport(controller: Controller): string | undefined {
  return usableRoot(controller).reason;
}

function usableRoot(controller: Controller): { root: string; reason?: undefined } | { reason: string } {
  const mount = hierarchyRoot(controller);
  if (!mount)
    return { reason: `no cgroup v1 ${controller} controller at /sys/fs/cgroup/${controller} (none in /proc/mounts)` };
  if (process.getuid?.() !== 0) return { reason: `cgroup ${controller} limits need root` };
  if (mount.options.includes("ro")) return { reason: `${mount.point} is mounted read-only` };
  if (controller === "cpu" && !existsSync(join(mount.point, "cpu.cfs_quota_us")))
    return { reason: `the kernel has no CFS bandwidth control (no cpu.cfs_quota_us in ${mount.point})` };
  return { root: mount.point };
}

/** The creating process's own cgroup in a hierarchy: where the components it starts live. */
function ownCgroup(controller: Controller, root: string): string {
  const line = readFileSync("/proc/self/cgroup", "utf8")
    .split("\n")
    .find((l) => l.split(":")[1]?.split(",").includes(controller));
  const dir = join(root, line?.split(":").slice(2).join(":") ?? "/");
  try {
    return statSync(dir).isDirectory() ? dir : root;
  } catch {
    return root;
  }
}

function readPids(dir: string): number[] {
  return readFileSync(join(dir, "cgroup.procs"), "utf8").split("\n").filter(Boolean).map(Number);
}

/** Moves one process (all its threads) into a cgroup; one that exited meanwhile is no error. */
function movePid(pid: number, dir: string): void {
  try {
    writeFileSync(join(dir, "cgroup.procs"), String(pid));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ESRCH") throw err;
  }
}

/** Moves every member out to `home` and removes the group; retried while members keep forking. */
async function dissolve(dir: string, home: string): Promise<void> {
  await eventually(
    () => {
      try {
        for (const pid of readPids(dir)) movePid(pid, home);
        rmdirSync(dir);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
      }
      return true;
    },
    { what: `cgroup ${dir} to be emptied and removed`, timeoutMs: 10_000, intervalMs: 50 },
  );
}

function readKeyed(file: string): Record<string, number> {
  return Object.fromEntries(
    readFileSync(file, "utf8")
      .split("\n")
      .filter(Boolean)
      .map((line) => {
        const [key = "", value = ""] = line.split(/\s+/);
        return [key, Number(value)];
      }),
  );
}

/** What the two controllers share: a directory, its members, and its removal. */
abstract class Cgroup {
  private readonly release: () => Promise<void>;

  protected constructor(
    /** The group's directory, e.g. /sys/fs/cgroup/memory/gw-chaos-4242-gateway. */
    readonly path: string,
    /** Where members go back to on remove(): the creating process's own cgroup. */
    home: string,
  ) {
    this.release = deferCleanup(`cgroup ${path}`, () => dissolve(path, home));
  }

  protected static make(controller: Controller, name: string): { path: string; home: string } {
    if (typeof name !== "string" || !NAME.test(name))
      throw new Error(
        `cgroup name ${JSON.stringify(name)}: must be 1-48 characters of a-z, 0-9, '-' or '_', starting with a letter or digit`,
      );
    const usable = usableRoot(controller);
    if (usable.reason !== undefined) throw new Error(`not runnable here: ${usable.reason}`);
    const { root } = usable;
    const path = join(root, `${PREFIX}${process.pid}-${name}`);
    try {
      // The kernel fills the new directory with the controller's files.
      mkdirSync(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "EEXIST")
        throw new Error(`cgroup name "${name}": ${path} already exists (this run made a group of that name)`);
      throw err;
    }
    return { path, home: ownCgroup(controller, root) };
  }

  /**
   * Moves the whole process group `pgid` (a component started by the supervisor leads its own
   * group) into this cgroup. Threads and processes it starts later follow by themselves.
   */
  add(pgid: number): void {
    if (!Number.isSafeInteger(pgid) || pgid <= 0) throw new Error(`add: pgid must be a positive integer, got ${pgid}`);
    let pending = processGroup(pgid);
    if (pending.length === 0) throw new Error(`add: no process group ${pgid} (is the process running?)`);
    // A member may fork while we move the others: repeat until the whole group is inside.
    for (let round = 0; pending.length > 0; round++) {
      if (round === 10) throw new Error(`add: process group ${pgid} keeps forking; pids still outside: ${pending}`);
      for (const pid of pending) movePid(pid, this.path);
      const inside = new Set(this.members());
      pending = processGroup(pgid).filter((pid) => !inside.has(pid));
    }
  }

  /** Pids of the processes in the group now. */
  members(): number[] {
    return readPids(this.path);
  }

  /** Moves the members back where they came from and removes the group; safe to call twice. */
  remove(): Promise<void> {
    return this.release();
  }

  protected read(file: string): string {
    return readFileSync(join(this.path, file), "utf8").trim();
  }

  protected write(file: string, value: string | number): void {
    writeFileSync(join(this.path, file), String(value));
  }
}

/** A memory limit (memory.limit_in_bytes, and memsw when present so swap cannot hide it). */
export class MemoryCgroup extends Cgroup {
  private constructor(path: string, home: string) {
    super(path, home);
  }

  static async create(name: string): Promise<MemoryCgroup> {
    const { path, home } = Cgroup.make("memory", name);
    return new MemoryCgroup(path, home);
  }

  /**
   * Sets the limit. Only what members allocate after add() counts: kernel 6.x removed
   * move_charge_at_immigrate, so pages a process already had stay charged to its old group.
   */
  async setLimit(bytes: number): Promise<void> {
    if (!Number.isSafeInteger(bytes) || bytes < 4096)
      throw new Error(`setLimit: bytes must be an integer of at least 4096 (one page), got ${bytes}`);
    // The kernel keeps limit <= memsw limit: lower the limit first, raise memsw first.
    const files = this.hasSwapAccounting()
      ? ["memory.limit_in_bytes", "memory.memsw.limit_in_bytes"]
      : ["memory.limit_in_bytes"];
    const raising = bytes > Number(this.read("memory.limit_in_bytes"));
    for (const file of raising ? files.reverse() : files) {
      try {
        this.write(file, bytes);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === "EBUSY")
          throw new Error(
            `setLimit: ${bytes} bytes is below what ${this.path} uses (${this.usage()} bytes) and the kernel could not reclaim enough`,
          );
        throw err;
      }
    }
  }

  /** Bytes charged to the group now (memory.usage_in_bytes). */
  usage(): number {
    return Number(this.read("memory.usage_in_bytes"));
  }

  /** The most the group has used (memory.max_usage_in_bytes). */
  maxUsage(): number {
    return Number(this.read("memory.max_usage_in_bytes"));
  }

  /**
   * Processes the OOM killer killed in this group: memory.oom_control's oom_kill. Not
   * memory.failcnt: it stayed 0 on kernel 6.18 even while the group was OOM-killing.
   */
  oomKills(): number {
    const kills = readKeyed(join(this.path, "memory.oom_control")).oom_kill;
    if (kills === undefined) throw new Error(`${this.path}/memory.oom_control has no oom_kill counter (kernel < 4.13)`);
    return kills;
  }

  private hasSwapAccounting(): boolean {
    return existsSync(join(this.path, "memory.memsw.limit_in_bytes"));
  }
}

/** Throttling counters of a cpu group (cpu.stat). */
export interface CpuStats {
  /** CFS periods in which a member was runnable. */
  nrPeriods: number;
  /** Periods in which the group used up its quota and was stopped. */
  nrThrottled: number;
  /** Total time members spent throttled, in nanoseconds. */
  throttledTimeNs: number;
}

/** A CPU quota (CFS bandwidth: cpu.cfs_quota_us per 100 ms cpu.cfs_period_us). */
export class CpuCgroup extends Cgroup {
  private constructor(path: string, home: string) {
    super(path, home);
  }

  static async create(name: string): Promise<CpuCgroup> {
    const { path, home } = Cgroup.make("cpu", name);
    return new CpuCgroup(path, home);
  }

  /** Limits the members to `cores` CPUs' worth of time (0.2 = 20 ms in each 100 ms). */
  async setQuota(cores: number): Promise<void> {
    const cpus = availableParallelism();
    if (!Number.isFinite(cores) || cores <= 0 || cores > cpus)
      throw new Error(`setQuota: cores must be > 0 and <= ${cpus} (the CPUs of this machine), got ${cores}`);
    const quota = Math.round(cores * CFS_PERIOD_US);
    if (quota < MIN_QUOTA_US)
      throw new Error(
        `setQuota: cores must be at least ${MIN_QUOTA_US / CFS_PERIOD_US} (the kernel's 1 ms minimum quota), got ${cores}`,
      );
    this.write("cpu.cfs_period_us", CFS_PERIOD_US);
    this.write("cpu.cfs_quota_us", quota);
  }

  /** Removes the quota. */
  async lift(): Promise<void> {
    this.write("cpu.cfs_quota_us", -1);
  }

  stats(): CpuStats {
    const s = readKeyed(join(this.path, "cpu.stat"));
    return { nrPeriods: s.nr_periods ?? 0, nrThrottled: s.nr_throttled ?? 0, throttledTimeNs: s.throttled_time ?? 0 };
  }
}

/**
 * Removes the groups of runs that died without cleaning up (SIGKILL): any gw-chaos-<pid>-*
 * group whose creating pid is gone. Members left inside go to the hierarchy root. Returns
 * the paths removed.
 */
export async function sweepStaleCgroups(): Promise<string[]> {
  const removed: string[] = [];
  for (const controller of ["memory", "cpu"] as const) {
    const usable = usableRoot(controller);
    if (usable.reason !== undefined) continue;
    for (const entry of readdirSync(usable.root)) {
      const creator = STALE.exec(entry)?.[1];
      if (creator === undefined || isAlive(Number(creator))) continue;
      const dir = join(usable.root, entry);
      await dissolve(dir, usable.root);
      removed.push(dir);
    }
  }
  return removed;
}
