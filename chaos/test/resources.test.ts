import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { patchedGateway } from "../../harness/src/components/patched-gateway.js";
import { procMounts } from "../../harness/src/host/cgroup.js";
import { repoRoot } from "../../harness/src/paths.js";
import { eventually } from "../../harness/src/poll.js";
import { processGroup } from "../../harness/src/proc-stats.js";
import { isAlive } from "../../harness/src/supervisor.js";
import { cpu, diskFull, MEMORY_LIMIT_BYTES, memory } from "../experiments/resources.js";
import type { RunParameters } from "../src/experiment.js";
import { type HostProbes, hostSupport, thisHost } from "../src/host-support.js";
import { type ExperimentResult, runExperiment } from "../src/runner.js";

const ci: RunParameters = { mode: "ci", seed: 1 };
const progress = (line: string) => process.stdout.write(`${line}\n`);
const failed = (r: ExperimentResult) => r.invariants.filter((c) => !c.ok).map((c) => c.name);
const MiB = 1024 * 1024;

/** A copy of the gateway that never sheds: no in-flight bound, no shedding on a lagging or busy event loop. */
const withoutShedding = () =>
  patchedGateway("no-shedding", [
    { file: "protection.ts", find: "if (inFlight >= maxInFlight) {", replace: "if (inFlight < 0) {" },
    { file: "protection.ts", find: "if (lagMs > maxEventLoopLagMs) {", replace: "if (lagMs < 0) {" },
    { file: "protection.ts", find: "if (busy > maxEventLoopUtilization) {", replace: "if (busy < 0) {" },
  ]);

describe("what the host must offer", () => {
  const lacking: HostProbes = {
    root: () => undefined,
    cgroup: (c) => (c === "memory" ? "no cgroup v1 memory controller (none in /proc/mounts)" : undefined),
    tmpfs: () => undefined,
  };

  it("names each missing need", () => {
    expect(hostSupport(["root", "cgroup-v1-memory", "cgroup-v1-cpu", "tmpfs"], lacking)).toEqual([
      "cgroup-v1-memory: no cgroup v1 memory controller (none in /proc/mounts)",
    ]);
    expect(hostSupport(["root"], { ...lacking, root: () => "needs root" })).toEqual(["root: needs root"]);
  });

  it("fails an experiment the host cannot run as not runnable here, before anything starts", async () => {
    const result = await runExperiment(memory(ci), { host: lacking });
    expect(result.verdict).toBe("Fail");
    expect(result.reason).toBe(
      "not runnable here: cgroup-v1-memory: no cgroup v1 memory controller (none in /proc/mounts)",
    );
    expect(result.faults).toEqual([]);
    expect(result.probes).toEqual([]);
  });

  it("every resource experiment says what it requires, and this host offers it", () => {
    expect(memory(ci).requires).toEqual(["root", "cgroup-v1-memory"]);
    expect(cpu(ci).requires).toEqual(["root", "cgroup-v1-cpu"]);
    expect(diskFull(ci).requires).toEqual(["root", "tmpfs"]);
    expect(hostSupport(["root", "cgroup-v1-memory", "cgroup-v1-cpu", "tmpfs"], thisHost)).toEqual([]);
  });
});

describe("resources/memory", () => {
  it("holds: under its memory limit the gateway sheds a burst with 503 and stays well under the limit", async () => {
    const result = await runExperiment(memory(ci), { progress });
    expect(result.reason).toBe("");
    expect(result.verdict).toBe("Pass");
    expect(result.figures["gateway memory limit (MiB)"]).toBe(MEMORY_LIMIT_BYTES / MiB);
    expect(result.figures["gateway RSS peak (MiB, sampled every 2 s)"]).toBeLessThan(MEMORY_LIMIT_BYTES / MiB);
    expect(result.load.byStatus["503"]).toBeGreaterThan(0);
  }, 300_000);

  it("fails with the OOM kill named when the limit is too small to live with", async () => {
    const result = await runExperiment(memory(ci, 128 * MiB), { progress });
    expect(result.verdict).toBe("Fail");
    expect(result.reason).toMatch(
      /^the gateway was OOM-killed: [1-9]\d* kill\(s\) in its memory cgroup \(limit 128 MiB\)/,
    );
  }, 300_000);

  // Without its in-flight bound the gateway takes the burst in: measured here, its resident peak
  // rose from ~215 to ~280 MiB, still under the 320 MiB limit, so it fails on shedding first.
  it("catches a gateway that takes the burst in instead of shedding it", async () => {
    const result = await runExperiment(memory(ci), { progress, gatewayMain: withoutShedding() });
    expect(result.verdict).toBe("Fail");
    expect(failed(result)).toEqual(
      expect.arrayContaining([
        expect.stringMatching(
          /^(requests shed with 503\/429 \+ Retry-After during the fault|the gateway was not OOM-killed|gateway resident memory peak \(MiB\))/,
        ),
      ]),
    );
  }, 300_000);
});

describe("resources/cpu", () => {
  // Found here: throttled to a quarter core, a gateway shedding on in-flight work and loop delay only
  // answered its sheds after 3.4-10 s (p99): requests waited in the kernel while the loop's delay
  // stayed in bound. It sheds on a busy loop too now (backpressure.maxEventLoopUtilization).
  it("holds: throttled to a quarter core it sheds quickly, answers what it accepts within a bound, recovers", async () => {
    const result = await runExperiment(cpu(ci), { progress });
    expect(result.reason).toBe("");
    expect(result.verdict).toBe("Pass");
    expect(result.faults[0]?.figures["CFS periods throttled"]).toBeGreaterThan(0);
  }, 300_000);

  it("catches a gateway that never sheds", async () => {
    const result = await runExperiment(cpu(ci), { progress, gatewayMain: withoutShedding() });
    expect(result.verdict).toBe("Fail");
    expect(failed(result)).toEqual(
      expect.arrayContaining([
        expect.stringMatching(
          /^(requests shed with 503\/429 \+ Retry-After during the fault|accepted answers' p99 during the faults \(ms\))$/,
        ),
      ]),
    );
  }, 300_000);
});

const AUDIT_ACCOUNTING =
  "audit events made (2 per signal answered 2xx + 1 per storm request) = rows in Data Storage + dropped (counted)";

describe("resources/disk-full", () => {
  it("holds: with the journal's disk full and Data Storage down, signals flow and every audit event is accounted for", async () => {
    const result = await runExperiment(diskFull(ci), { progress });
    expect(result.reason).toBe("");
    expect(result.verdict).toBe("Pass");
    expect(String(result.figures["audit events dropped, by reason"])).toContain("journal_write_failed");
  }, 300_000);

  it("catches a gateway that drops audit events it cannot journal without counting them", async () => {
    const main = patchedGateway("audit-drops-silent", [
      {
        file: "audit.ts",
        find: "if (written < events.length) this.metrics.auditEventsDropped.inc({ reason }, events.length - written);",
        replace: "// dropped silently",
      },
    ]);
    const result = await runExperiment(diskFull(ci), { progress, gatewayMain: main });
    expect(result.verdict).toBe("Fail");
    expect(failed(result)).toContain(AUDIT_ACCOUNTING);
  }, 300_000);
});

/** What a child wrote so far (stdout and stderr). */
function watch(child: ChildProcess): { text(): string } {
  let out = "";
  child.stdout?.on("data", (d: Buffer) => {
    out += d.toString();
  });
  child.stderr?.on("data", (d: Buffer) => {
    out += d.toString();
  });
  return { text: () => out };
}

/** The run's component log folder (logs/<stamp>-<pid>) and the runner's pid in its name. */
function runLogs(resultsDir: string): { dir: string; pid: number } | false {
  const logs = join(resultsDir, "logs");
  const entry = existsSync(logs) ? readdirSync(logs).find((e) => /-\d+$/.test(e)) : undefined;
  return entry ? { dir: join(logs, entry), pid: Number(entry.split("-").pop()) } : false;
}

const cgroupsOf = (pid: number) =>
  ["memory", "cpu"].flatMap((c) => {
    const root = `/sys/fs/cgroup/${c}`;
    return existsSync(root) ? readdirSync(root).filter((e) => e.startsWith(`gw-chaos-${pid}-`)) : [];
  });
const mountsOf = (pid: number) => procMounts().filter((m) => m.point.includes(`/gw-chaos-${pid}-`));

describe("Ctrl-C during an experiment", () => {
  it.each([
    ["resources/memory", "cgroup"],
    ["resources/disk-full", "tmpfs"],
  ] as const)(
    "%s: leaves no %s, mount, toxic or process behind and exits 130",
    async (name, resource) => {
      // Its own process group, so a failed test can still interrupt the whole run.
      const child = spawn("npx", ["tsx", "chaos/suite/run.ts", name], {
        cwd: repoRoot,
        stdio: ["ignore", "pipe", "pipe"],
        detached: true,
      });
      const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
      const out = watch(child);
      try {
        const resultsDir = await eventually(() => /results in (\S+)\n/.exec(out.text())?.[1] ?? false, {
          what: "the run to name its results folder",
          timeoutMs: 60_000,
        });
        await eventually(() => / inject /.test(out.text()), {
          what: `the fault of ${name} to be injected`,
          timeoutMs: 180_000,
          intervalMs: 250,
        });
        const run = await eventually(() => runLogs(resultsDir), { what: "the run's log folder", timeoutMs: 5_000 });
        // Everything the run started, while it runs: the supervisor's pids file, the cgroup or mount.
        const pids = readFileSync(join(run.dir, "pids"), "utf8").split("\n").filter(Boolean).map(Number);
        expect(pids.length).toBeGreaterThan(5);
        if (resource === "cgroup") expect(cgroupsOf(run.pid)).not.toEqual([]);
        else expect(mountsOf(run.pid)).not.toEqual([]);

        process.kill(run.pid, "SIGINT");
        expect(await exited).toBe(130);

        expect(isAlive(run.pid)).toBe(false);
        expect(cgroupsOf(run.pid)).toEqual([]);
        expect(mountsOf(run.pid)).toEqual([]);
        // Toxics live in the Toxiproxy process: with every process of the run gone, none is left.
        expect(pids.filter(isAlive)).toEqual([]);
        expect(pids.flatMap(processGroup)).toEqual([]);
      } finally {
        if (child.exitCode === null && child.pid) process.kill(-child.pid, "SIGINT");
      }
    },
    300_000,
  );
});
