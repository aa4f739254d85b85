import { type ChildProcess, spawn } from "node:child_process";
import { closeSync, existsSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { setPriority } from "node:os";
import { join } from "node:path";
import { currentRunDir } from "./paths.js";
import { processGroup, processTree } from "./proc-stats.js";

/** How to run one component process. */
export interface ProcessSpec {
  /** Short name; also the log file name in the run folder. */
  name: string;
  command: string;
  args?: string[];
  env?: Record<string, string | undefined>;
  cwd?: string;
  /** Readiness probe, polled until true or the deadline passes. */
  ready?: () => Promise<boolean> | boolean;
  readyTimeoutMs?: number;
  /** Signal for a graceful stop (default SIGTERM) and how long to wait before SIGKILL. */
  stopSignal?: NodeJS.Signals;
  stopTimeoutMs?: number;
}

export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

const live = new Map<number, ManagedProcess>();
let watchdogStarted = false;
let signalsHooked = false;

/**
 * Undo actions that must run however the run ends (a fault to remove, a
 * cgroup or mount to take away): on Ctrl-C/SIGTERM/SIGHUP they run, newest
 * first, before the processes are stopped.
 */
const cleanups = new Map<number, { name: string; run: () => Promise<void> | void }>();
let nextCleanup = 0;

/**
 * Registers an undo action; the returned function runs it once (and
 * unregisters it). Interrupt handlers run whatever is still registered.
 */
export function deferCleanup(name: string, run: () => Promise<void> | void): () => Promise<void> {
  hookSignals();
  const id = nextCleanup++;
  cleanups.set(id, { name, run });
  return async () => {
    const entry = cleanups.get(id);
    if (!entry) return;
    cleanups.delete(id);
    await entry.run();
  };
}

/** Runs every registered undo action, newest first; one failing does not stop the others. */
export async function runCleanups(): Promise<void> {
  for (const id of [...cleanups.keys()].reverse()) {
    const entry = cleanups.get(id);
    cleanups.delete(id);
    try {
      await entry?.run();
    } catch (err) {
      process.stderr.write(`cleanup "${entry?.name}" failed: ${(err as Error).message}\n`);
    }
  }
}

/** Names of the undo actions still registered (for leak checks). */
export function pendingCleanups(): string[] {
  return [...cleanups.values()].map((c) => c.name);
}

function pidFile(): string {
  return join(currentRunDir(), "pids");
}

function writePidFile(): void {
  writeFileSync(pidFile(), [...live.keys()].join("\n"));
}

// A separate process that outlives a crashed or SIGKILLed test worker and
// kills what it left behind: exit handlers do not run on SIGKILL.
const WATCHDOG = `
const fs = require("node:fs");
const [ppid, file] = process.argv.slice(1);
setInterval(() => {
  try { process.kill(Number(ppid), 0); return; } catch {}
  let pids = [];
  try { pids = fs.readFileSync(file, "utf8").split("\\n").filter(Boolean).map(Number); } catch {}
  for (const p of pids) { try { process.kill(-p, "SIGKILL"); } catch {} try { process.kill(p, "SIGKILL"); } catch {} }
  process.exit(0);
}, 200);
`;

function ensureReaper(): void {
  if (!watchdogStarted) {
    watchdogStarted = true;
    const wd = spawn(process.execPath, ["-e", WATCHDOG, String(process.pid), pidFile()], {
      detached: true,
      stdio: "ignore",
    });
    wd.unref();
  }
  hookSignals();
}

function hookSignals(): void {
  if (signalsHooked) return;
  signalsHooked = true;
  // Last resort on any exit: SIGKILL whole process groups, synchronously.
  process.on("exit", () => {
    for (const pid of live.keys()) killGroup(pid, "SIGKILL");
  });
  // A listener stays for repeats: `npx tsx` forwards a second SIGINT a few ms after the first,
  // which would otherwise kill the process halfway through its cleanup.
  let stopping = false;
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.on(sig, () => {
      if (stopping) return;
      stopping = true;
      void runCleanups()
        .then(stopAll)
        .finally(() => process.exit(128 + (sig === "SIGINT" ? 2 : sig === "SIGTERM" ? 15 : 1)));
    });
  }
}

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    try {
      process.kill(pid, signal);
    } catch {
      /* already gone */
    }
  }
}

/** True while a process with this pid exists. */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Stops every process this test process started (used by signal handlers and stack teardown). */
export async function stopAll(): Promise<void> {
  await Promise.allSettled([...live.values()].map((p) => p.stop()));
}

/** Number of component processes alive right now (for leak checks). */
export function liveProcessCount(): number {
  return live.size;
}

/**
 * One supervised component process: own process group, log file in the run
 * folder, readiness probe with a deadline, graceful stop with a SIGKILL
 * fallback, and fault verbs (kill, pause, resume) for chaos tests.
 */
export class ManagedProcess {
  readonly logPath: string;
  private child: ChildProcess | undefined;
  private exitPromise: Promise<ExitStatus> | undefined;
  private lastExit: ExitStatus | undefined;

  constructor(readonly spec: ProcessSpec) {
    let path = join(currentRunDir(), `${spec.name}.log`);
    for (let i = 2; existsSync(path); i++) path = join(currentRunDir(), `${spec.name}-${i}.log`);
    this.logPath = path;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /**
   * Sets the nice value of every thread of the process and its descendants
   * (Linux nice is per thread); threads and processes started later inherit it.
   * Descendants, not the process group: PostgreSQL's backends each start a
   * session of their own.
   */
  setNice(nice: number): void {
    const root = this.pid;
    if (root === undefined || !this.running) throw new Error(`${this.spec.name}: not running`);
    for (const pid of new Set([...processGroup(root), ...processTree(root)])) {
      try {
        for (const tid of readdirSync(`/proc/${pid}/task`)) setPriority(Number(tid), nice);
      } catch {
        // The process or thread exited meanwhile.
      }
    }
  }

  get running(): boolean {
    return this.child !== undefined && this.lastExit === undefined;
  }

  /** Resolves when the current process exits. */
  get exited(): Promise<ExitStatus> {
    return this.exitPromise ?? Promise.resolve(this.lastExit ?? { code: null, signal: null });
  }

  /** `extraArgs` follow the spec's arguments for this start only (a restart in another role). */
  async start(extraArgs: string[] = []): Promise<this> {
    if (this.running) return this;
    ensureReaper();
    const fd = openSync(this.logPath, "a");
    const child = spawn(this.spec.command, [...(this.spec.args ?? []), ...extraArgs], {
      cwd: this.spec.cwd,
      env: { ...process.env, ...this.spec.env },
      stdio: ["ignore", fd, fd],
      detached: true, // own process group: Ctrl-C reaches us, we stop it in order
    });
    closeSync(fd);
    this.child = child;
    this.lastExit = undefined;
    this.exitPromise = new Promise<ExitStatus>((resolve) => {
      child.once("exit", (code, signal) => {
        this.lastExit = { code, signal };
        if (child.pid) live.delete(child.pid);
        if (watchdogStarted) writePidFile();
        resolve(this.lastExit);
      });
    });
    const spawnError = new Promise<Error>((resolve) => child.once("error", resolve));
    if (child.pid) {
      live.set(child.pid, this);
      writePidFile();
    }
    const timeoutMs = this.spec.readyTimeoutMs ?? 30_000;
    const deadline = Date.now() + timeoutMs;
    let lastProbeError = "";
    while (this.spec.ready) {
      const early = await Promise.race([
        spawnError,
        this.exitPromise.then((s) => new Error(`exited early (code ${s.code}, signal ${s.signal})`)),
        new Promise<undefined>((r) => setTimeout(r, 50)),
      ]);
      if (early) throw this.failure(early.message);
      try {
        if (await this.spec.ready()) break;
      } catch (err) {
        lastProbeError = (err as Error).message;
      }
      if (Date.now() > deadline) {
        await this.kill();
        throw this.failure(
          `not ready within ${timeoutMs} ms${lastProbeError ? ` (last probe: ${lastProbeError})` : ""}`,
        );
      }
    }
    return this;
  }

  private failure(reason: string): Error {
    return new Error(`${this.spec.name} ${reason}\n--- last lines of ${this.logPath} ---\n${this.logTail()}`);
  }

  /** The last lines of this process's log, for failure messages. */
  logTail(lines = 40): string {
    try {
      return readFileSync(this.logPath, "utf8").split("\n").slice(-lines).join("\n");
    } catch {
      return "(no log)";
    }
  }

  /** Graceful stop: stop signal, then SIGKILL to the whole group after the timeout. */
  async stop(): Promise<ExitStatus> {
    if (!this.running || !this.child?.pid) return this.exited;
    const pid = this.child.pid;
    killGroup(pid, "SIGCONT"); // a paused process cannot handle SIGTERM
    killGroup(pid, this.spec.stopSignal ?? "SIGTERM");
    const timeout = this.spec.stopTimeoutMs ?? 10_000;
    const timer = setTimeout(() => killGroup(pid, "SIGKILL"), timeout);
    const status = await this.exited;
    clearTimeout(timer);
    killGroup(pid, "SIGKILL"); // leftovers in the group (e.g. forked workers)
    return status;
  }

  /** Abrupt death (default SIGKILL), as a crash would be. */
  async kill(signal: NodeJS.Signals = "SIGKILL"): Promise<ExitStatus> {
    if (!this.running || !this.child?.pid) return this.exited;
    killGroup(this.child.pid, signal);
    return this.exited;
  }

  /** Sends a signal without waiting (e.g. SIGHUP for a config reload). */
  signal(signal: NodeJS.Signals): void {
    if (this.running && this.child?.pid) process.kill(this.child.pid, signal);
  }

  /** Freezes the process (SIGSTOP): it keeps its sockets but answers nothing. */
  pause(): void {
    if (this.running && this.child?.pid) killGroup(this.child.pid, "SIGSTOP");
  }

  resume(): void {
    if (this.running && this.child?.pid) killGroup(this.child.pid, "SIGCONT");
  }

  /** start(), removing the component's scratch directory when it fails to come up. */
  async startIn(scratch: string): Promise<this> {
    try {
      return await this.start();
    } catch (err) {
      rmSync(scratch, { recursive: true, force: true });
      throw err;
    }
  }

  async restart(): Promise<this> {
    await this.stop();
    return this.start();
  }
}
