// Host-level fault primitives against the real kernel: cgroup v1 memory and cpu limits, a
// size-limited tmpfs, and their removal however the run ends (normal, Ctrl-C, SIGKILL + sweep).
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { open, writeFile } from "node:fs/promises";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { CpuCgroup, cgroupSupport, MemoryCgroup, procMounts, sweepStaleCgroups } from "../src/host/cgroup.js";
import { sweepStaleMounts, Tmpfs, tmpfsSupport } from "../src/host/tmpfs.js";
import { repoRoot, scratchDir } from "../src/paths.js";
import { eventually } from "../src/poll.js";
import { coresOver } from "../src/proc-stats.js";
import { isAlive, pendingCleanups } from "../src/supervisor.js";

const MiB = 1024 * 1024;
const unsupported = [cgroupSupport("memory"), cgroupSupport("cpu"), tmpfsSupport()].filter(Boolean);

const children: ChildProcess[] = [];
// What each test made, taken away even when it fails (removal is idempotent).
const undo: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of children.splice(0)) if (c.pid) killGroup(c.pid, "SIGKILL");
  for (const u of undo.splice(0).reverse()) await u();
});

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    /* gone */
  }
}

/** A node child leading its own process group, as the supervisor starts components. */
function spawnNode(script: string, args: string[] = []): ChildProcess {
  const child = spawn(process.execPath, ["-e", script, ...args], {
    detached: true,
    stdio: ["pipe", "pipe", "inherit"],
  });
  children.push(child);
  return child;
}

// Waits for "go" on stdin (so it allocates only once it is in the cgroup), then touches
// argv[1] MiB of Buffers (filled, so every page is really charged) and keeps them.
const HOG = `process.stdin.once("data", () => {
  const keep = [];
  for (let i = 0; i < Number(process.argv[1]); i++) keep.push(Buffer.alloc(1 << 20, 1));
  process.stdout.write("allocated\\n");
  setInterval(() => keep.length, 1000);
});`;

function exited(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  return new Promise((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));
}

function printed(child: ChildProcess, text: string): Promise<void> {
  return new Promise((resolve, reject) => {
    let out = "";
    child.stdout?.on("data", (chunk: Buffer) => {
      out += chunk;
      if (out.includes(text)) resolve();
    });
    child.once("exit", (code, signal) => reject(new Error(`exited (code ${code}, signal ${signal}) before "${text}"`)));
  });
}

function memoryCgroupOf(pid: number): string {
  return readFileSync(`/proc/${pid}/cgroup`, "utf8").match(/^\d+:memory:(.*)$/m)?.[1] ?? "";
}

const mounted = (path: string) => procMounts().some((m) => m.point === path);

describe.skipIf(unsupported.length > 0)(
  unsupported.length > 0 ? `host faults: skipped, not runnable here: ${unsupported.join("; ")}` : "host faults",
  () => {
    it("OOM-kills a child that allocates beyond a 64 MiB memory limit and counts the kill", async () => {
      const group = await MemoryCgroup.create("oom");
      undo.push(() => group.remove());
      await group.setLimit(64 * MiB);
      const hog = spawnNode(HOG, ["256"]);
      group.add(hog.pid ?? 0);
      expect(group.members()).toContain(hog.pid);
      const exit = exited(hog);
      hog.stdin?.write("go\n");
      expect(await exit).toEqual({ code: null, signal: "SIGKILL" });
      await eventually(() => group.oomKills() === 1, { what: "the OOM kill to be counted" });
      expect(group.maxUsage()).toBeGreaterThan(60 * MiB);
      expect(group.maxUsage()).toBeLessThanOrEqual(64 * MiB);
      console.info(`[host] OOM: oom_kill=${group.oomKills()} max_usage=${group.maxUsage()}`);
    });

    it("lets a child below the limit live, and remove() puts it back where it came from", async () => {
      const group = await MemoryCgroup.create("below");
      undo.push(() => group.remove());
      await group.setLimit(64 * MiB);
      const hog = spawnNode(HOG, ["24"]);
      const pid = hog.pid ?? 0;
      const home = memoryCgroupOf(pid);
      group.add(pid);
      expect(memoryCgroupOf(pid)).toBe(`/${group.path.split("/").pop()}`);
      hog.stdin?.write("go\n");
      await printed(hog, "allocated");
      expect(isAlive(pid)).toBe(true);
      expect(group.usage()).toBeGreaterThanOrEqual(24 * MiB);
      expect(group.oomKills()).toBe(0);

      await group.remove();
      expect(existsSync(group.path)).toBe(false);
      expect(memoryCgroupOf(pid)).toBe(home);
      expect(pendingCleanups()).not.toContain(`cgroup ${group.path}`);
      await group.remove(); // a second call is a no-op
    });

    it("holds a busy loop near a 0.2-core quota, throttling it, and lift() frees it", async () => {
      const group = await CpuCgroup.create("busy");
      undo.push(() => group.remove());
      await group.setQuota(0.2);
      // The highest weight, so the neighbours on a shared machine cannot starve the measured loop:
      // what it gets is then what the quota allows.
      writeFileSync(join(group.path, "cpu.shares"), "262144");
      const busy = spawnNode("for (;;) {}");
      const pid = busy.pid ?? 0;
      group.add(pid);
      const before = group.stats();
      const quota = (await coresOver({ busy: pid }, 2000)).busy ?? 0;
      const after = group.stats();
      await group.lift();
      const free = (await coresOver({ busy: pid }, 1000)).busy ?? 0;
      console.info(
        `[host] cpu: ${quota.toFixed(3)} cores under quota 0.2 (nr_throttled +${after.nrThrottled - before.nrThrottled}, ` +
          `throttled ${((after.throttledTimeNs - before.throttledTimeNs) / 1e6).toFixed(0)} ms), ${free.toFixed(2)} cores lifted`,
      );
      expect(quota).toBeGreaterThan(0.15);
      expect(quota).toBeLessThan(0.25);
      expect(after.nrThrottled - before.nrThrottled).toBeGreaterThanOrEqual(10);
      expect(after.throttledTimeNs).toBeGreaterThan(before.throttledTimeNs);
      expect(free).toBeGreaterThan(0.5);
    });

    it("fills a 1 MiB tmpfs: writing 2 MiB fails with ENOSPC, usage is reported, unmount leaves nothing", async () => {
      const disk = await Tmpfs.mount({ sizeBytes: MiB });
      undo.push(() => disk.unmount());
      expect(procMounts().find((m) => m.point === disk.path)?.options).toContain("size=1024k");
      await expect(writeFile(join(disk.path, "fill"), Buffer.alloc(2 * MiB, 1))).rejects.toMatchObject({
        code: "ENOSPC",
      });
      expect(await disk.usage()).toEqual({ sizeBytes: MiB, usedBytes: MiB, freeBytes: 0 });

      await disk.unmount();
      expect(mounted(disk.path)).toBe(false);
      expect(existsSync(disk.path)).toBe(false);
    });

    it("unmounts a tmpfs with a file still open by detaching it (umount -l)", async () => {
      const disk = await Tmpfs.mount({ sizeBytes: 64 * 1024 });
      undo.push(() => disk.unmount());
      const journal = await open(join(disk.path, "journal"), "w");
      try {
        await disk.unmount(); // a plain umount refuses (busy) while the file is open
        expect(mounted(disk.path)).toBe(false);
        await journal.write("the open file still works");
      } finally {
        await journal.close();
      }
    });

    it("refuses bad input with the field and the reason", async () => {
      await expect(MemoryCgroup.create("Bad Name!")).rejects.toThrow(
        /cgroup name "Bad Name!": must be 1-48 characters/,
      );
      const group = await MemoryCgroup.create("validation");
      undo.push(() => group.remove());
      await expect(MemoryCgroup.create("validation")).rejects.toThrow(/cgroup name "validation": .* already exists/);
      await expect(group.setLimit(0)).rejects.toThrow(
        "setLimit: bytes must be an integer of at least 4096 (one page), got 0",
      );
      // Above the largest pid_max (2^22): never a process group.
      expect(() => group.add(2 ** 22 + 12345)).toThrow(/add: no process group \d+/);
      const cpu = await CpuCgroup.create("validation");
      undo.push(() => cpu.remove());
      const cpus = availableParallelism();
      await expect(cpu.setQuota(cpus + 3)).rejects.toThrow(
        `setQuota: cores must be > 0 and <= ${cpus} (the CPUs of this machine), got ${cpus + 3}`,
      );
      await expect(cpu.setQuota(0)).rejects.toThrow(/setQuota: cores must be > 0/);
      await expect(cpu.setQuota(0.001)).rejects.toThrow(/cores must be at least 0.01 .* got 0.001/);
      await expect(Tmpfs.mount({ sizeBytes: 0 })).rejects.toThrow("Tmpfs.mount: sizeBytes must be an integer");
    });

    describe("when the run ends abruptly", () => {
      interface OwnerState {
        pid: number;
        sleeper: number;
        cgroups: string[];
        mount: string;
      }

      /** A stand-in chaos run in its own process group, as a terminal would start it. */
      async function startOwner(): Promise<{ owner: ChildProcess; state: OwnerState }> {
        const dir = scratchDir("host-owner");
        const stateFile = join(dir, "state.json");
        // node --import tsx, not npx tsx: the tsx CLI may re-send SIGINT within ~30 ms, and the
        // supervisor listens with process.once, so the repeat kills the run mid-cleanup.
        const owner = spawn(process.execPath, ["--import", "tsx", "harness/test/fixtures/host-owner.ts"], {
          cwd: repoRoot,
          env: { ...process.env, STATE_FILE: stateFile },
          stdio: "ignore",
          detached: true,
        });
        children.push(owner);
        const state = await eventually(() => JSON.parse(readFileSync(stateFile, "utf8")) as OwnerState, {
          what: "the owner to make its cgroups and tmpfs",
          timeoutMs: 30_000,
          intervalMs: 200,
        });
        rmSync(dir, { recursive: true, force: true });
        for (const path of state.cgroups)
          expect(readFileSync(join(path, "cgroup.procs"), "utf8")).toContain(String(state.sleeper));
        expect(mounted(state.mount)).toBe(true);
        return { owner, state };
      }

      it("leaves no cgroup and no mount behind when the run gets SIGINT (Ctrl-C)", async () => {
        const { owner, state } = await startOwner();
        const exit = exited(owner);
        killGroup(owner.pid ?? 0, "SIGINT");
        expect(await exit).toEqual({ code: 130, signal: null });
        for (const path of state.cgroups) expect(existsSync(path), path).toBe(false);
        expect(mounted(state.mount)).toBe(false);
        expect(existsSync(state.mount)).toBe(false);
        await eventually(() => !isAlive(state.sleeper), { what: `the owner's component ${state.sleeper} to be gone` });
      });

      it("sweeps what a SIGKILLed run left, and leaves a live run's groups alone", async () => {
        const { owner, state } = await startOwner();
        const exit = exited(owner);
        killGroup(owner.pid ?? 0, "SIGKILL");
        await exit;
        for (const path of state.cgroups) expect(existsSync(path), `${path} left by SIGKILL`).toBe(true);
        expect(mounted(state.mount)).toBe(true);
        // A run killed between unmount and rmdir leaves an empty mount point.
        const emptied = mkdtempSync(join(tmpdir(), `gw-chaos-${state.pid}-tmpfs-`));
        const live = await MemoryCgroup.create("live");
        undo.push(() => live.remove());

        expect(await sweepStaleCgroups()).toEqual(expect.arrayContaining(state.cgroups));
        expect(await sweepStaleMounts()).toEqual(expect.arrayContaining([state.mount, emptied]));
        expect(existsSync(emptied)).toBe(false);
        for (const path of state.cgroups) expect(existsSync(path), path).toBe(false);
        expect(mounted(state.mount)).toBe(false);
        expect(existsSync(state.mount)).toBe(false);
        expect(existsSync(live.path)).toBe(true);
      });
    });
  },
);
