// A size-limited tmpfs made for one run, to fill a component's disk (ENOSPC) on purpose.
// Mount points are <tmpdir>/gw-chaos-<creator pid>-tmpfs-XXXXXX with the source name
// "gw-chaos", so sweepStaleMounts() can tell leftovers of a SIGKILLed run in /proc/mounts.
import { execFile } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmdirSync } from "node:fs";
import { statfs } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { promisify } from "node:util";
import { binary } from "../paths.js";
import { deferCleanup, isAlive } from "../supervisor.js";
import { procMounts } from "./cgroup.js";

const run = promisify(execFile);
const SOURCE = "gw-chaos";
const STALE = /^gw-chaos-(\d+)-tmpfs-/;

/** Bytes of a tmpfs, from statfs(2). */
export interface TmpfsUsage {
  sizeBytes: number;
  usedBytes: number;
  freeBytes: number;
}

/** Why this host cannot give a run a tmpfs, or undefined when it can. */
export function tmpfsSupport(): string | undefined {
  if (process.getuid?.() !== 0) return "mounting a tmpfs needs root";
  if (!/\ttmpfs$/m.test(readFileSync("/proc/filesystems", "utf8")))
    return "the kernel has no tmpfs (not in /proc/filesystems)";
  try {
    binary("mount");
    binary("umount");
  } catch (err) {
    return (err as Error).message;
  }
  return undefined;
}

/** Unmounts, detaching lazily (umount -l) when something still has a file open there; then removes the mount point. */
async function detach(path: string): Promise<void> {
  try {
    await run(binary("umount"), [path]);
  } catch (err) {
    if (!/busy/i.test((err as { stderr?: string }).stderr ?? "")) throw err;
    // Open files keep working; the mount disappears from the tree now and from the kernel when they close.
    await run(binary("umount"), ["-l", path]);
  }
  rmdirSync(path);
}

/** A mounted tmpfs; unmount() (or Ctrl-C) takes it away. */
export class Tmpfs {
  private readonly release: () => Promise<void>;

  private constructor(
    /** The mount point. */
    readonly path: string,
  ) {
    this.release = deferCleanup(`tmpfs ${path}`, () => detach(path));
  }

  static async mount(opts: { sizeBytes: number }): Promise<Tmpfs> {
    const { sizeBytes } = opts;
    if (!Number.isSafeInteger(sizeBytes) || sizeBytes < 4096)
      throw new Error(`Tmpfs.mount: sizeBytes must be an integer of at least 4096 (one page), got ${sizeBytes}`);
    const unsupported = tmpfsSupport();
    if (unsupported) throw new Error(`not runnable here: ${unsupported}`);
    const path = mkdtempSync(join(tmpdir(), `gw-chaos-${process.pid}-tmpfs-`));
    try {
      await run(binary("mount"), ["-t", "tmpfs", "-o", `size=${sizeBytes},mode=0755`, SOURCE, path]);
    } catch (err) {
      rmdirSync(path);
      throw new Error(
        `mount tmpfs at ${path}: ${(err as { stderr?: string }).stderr?.trim() || (err as Error).message}`,
      );
    }
    return new Tmpfs(path);
  }

  async usage(): Promise<TmpfsUsage> {
    const s = await statfs(this.path);
    return { sizeBytes: s.blocks * s.bsize, usedBytes: (s.blocks - s.bfree) * s.bsize, freeBytes: s.bavail * s.bsize };
  }

  /** Unmounts (lazily when busy) and removes the mount point; safe to call twice. */
  unmount(): Promise<void> {
    return this.release();
  }
}

/**
 * Unmounts the tmpfs mounts of runs that died without cleaning up, and removes their mount
 * points (also the empty ones left by a run killed between unmount and rmdir); returns them.
 */
export async function sweepStaleMounts(): Promise<string[]> {
  const stale = (path: string) => {
    const creator = STALE.exec(basename(path))?.[1];
    return creator !== undefined && !isAlive(Number(creator));
  };
  const removed: string[] = [];
  for (const m of procMounts()) {
    if (m.type !== "tmpfs" || m.source !== SOURCE || !stale(m.point)) continue;
    await detach(m.point);
    removed.push(m.point);
  }
  for (const entry of readdirSync(tmpdir())) {
    const path = join(tmpdir(), entry);
    if (!stale(path)) continue;
    try {
      rmdirSync(path);
      removed.push(path);
    } catch (err) {
      // Files in it were written after the unmount: not ours to delete.
      if ((err as NodeJS.ErrnoException).code !== "ENOTEMPTY") throw err;
    }
  }
  return removed;
}
