import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { repoRoot, scratchDir } from "../src/paths.js";
import { eventually } from "../src/poll.js";
import { processGroup, processTree, statFields } from "../src/proc-stats.js";
import { isAlive, ManagedProcess } from "../src/supervisor.js";

const owners: ChildProcess[] = [];
afterEach(() => {
  for (const o of owners.splice(0)) if (o.pid) killGroup(o.pid, "SIGKILL");
});

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    /* gone */
  }
}

/**
 * Starts a stand-in test run in its own process group, as a terminal would,
 * and waits until it has written its component pids.
 */
async function startOwner(args: string[]): Promise<{ owner: ChildProcess; pids: number[] }> {
  const dir = scratchDir("owner");
  const pidFile = join(dir, "pids.json");
  const owner = spawn(process.execPath, args, {
    cwd: repoRoot,
    env: { ...process.env, PID_FILE: pidFile },
    stdio: "ignore",
    detached: true,
  });
  owners.push(owner);
  const pids = await eventually(() => JSON.parse(readFileSync(pidFile, "utf8")) as number[], {
    what: "the owner to start its components",
    timeoutMs: 60_000,
    intervalMs: 200,
  });
  rmSync(dir, { recursive: true, force: true });
  for (const pid of pids) expect(isAlive(pid)).toBe(true);
  return { owner, pids };
}

describe("process supervisor", () => {
  it("waits for readiness and reports a process that never gets ready with its log", async () => {
    const proc = new ManagedProcess({
      name: "never-ready",
      command: "sh",
      args: ["-c", "echo booting but never ready; sleep 30"],
      ready: () => false,
      readyTimeoutMs: 500,
    });
    await expect(proc.start()).rejects.toThrow(/not ready within 500 ms[\s\S]*booting but never ready/);
    expect(proc.running).toBe(false);
  });

  it("reports a process that exits during start-up with its log", async () => {
    const proc = new ManagedProcess({
      name: "crasher",
      command: "sh",
      args: ["-c", "echo bad flag >&2; exit 3"],
      ready: () => false,
    });
    await expect(proc.start()).rejects.toThrow(/exited early \(code 3[\s\S]*bad flag/);
  });

  it("sets the nice value of the whole process group, children included", async () => {
    const proc: ManagedProcess = new ManagedProcess({
      name: "family",
      command: "sh",
      args: ["-c", "sleep 30 & echo started; wait"],
      ready: () => proc.logTail().includes("started"),
    });
    await proc.start();
    try {
      proc.setNice(7);
      const group = processGroup(proc.pid ?? 0);
      expect(group.length).toBeGreaterThanOrEqual(2);
      for (const pid of group) expect(Number(statFields(pid)[16]), `pid ${pid}`).toBe(7);
    } finally {
      await proc.stop();
    }
  });

  it("sets the nice value of children that left the process group (as PostgreSQL's backends do)", async () => {
    const proc: ManagedProcess = new ManagedProcess({
      name: "leavers",
      command: "sh",
      args: ["-c", "setsid sleep 30 & echo started; wait"],
      ready: () => proc.logTail().includes("started"),
    });
    await proc.start();
    try {
      const pid = proc.pid ?? 0;
      const tree = await eventually(
        () => (processTree(pid).length >= 2 && processGroup(pid).length === 1 ? processTree(pid) : false),
        { what: "the child to be in a session of its own" },
      );
      proc.setNice(7);
      for (const pid of tree) expect(Number(statFields(pid)[16]), `pid ${pid}`).toBe(7);
    } finally {
      await proc.stop();
    }
  });

  it("stops gracefully, and SIGKILLs what ignores SIGTERM after the timeout", async () => {
    const proc: ManagedProcess = new ManagedProcess({
      name: "stubborn",
      command: "sh",
      args: ["-c", "trap '' TERM; echo trapped; while true; do sleep 0.1; done"],
      ready: () => proc.logTail().includes("trapped"),
      stopTimeoutMs: 300,
    });
    await proc.start();
    const status = await proc.stop();
    expect(status.signal).toBe("SIGKILL");
    expect(isAlive(proc.pid ?? 0)).toBe(false);
  });

  it("leaves no component running when its owner gets SIGINT (Ctrl-C)", async () => {
    const { owner, pids } = await startOwner(["--import", "tsx", "harness/test/fixtures/owner.ts"]);
    killGroup(owner.pid ?? 0, "SIGINT"); // what Ctrl-C does: the whole foreground group
    await eventually(() => pids.every((p) => !isAlive(p)), { what: `pids ${pids} to be gone`, timeoutMs: 15_000 });
  });

  it("leaves no component running when its owner is SIGKILLed (the watchdog reaps them)", async () => {
    const { owner, pids } = await startOwner(["--import", "tsx", "harness/test/fixtures/owner.ts"]);
    killGroup(owner.pid ?? 0, "SIGKILL");
    await eventually(() => pids.every((p) => !isAlive(p)), { what: `pids ${pids} to be gone`, timeoutMs: 15_000 });
  });

  it("leaves no component running when a vitest run is interrupted mid-suite", async () => {
    const vitest = join(repoRoot, "node_modules", "vitest", "vitest.mjs");
    const { owner, pids } = await startOwner([
      vitest,
      "run",
      "--config",
      "harness/test/fixtures/vitest.sigint.config.ts",
    ]);
    killGroup(owner.pid ?? 0, "SIGINT");
    await eventually(() => pids.every((p) => !isAlive(p)), { what: `pids ${pids} to be gone`, timeoutMs: 20_000 });
  });
});
