// What the duplicate-path benchmark measured, and its Markdown rendering (bench.md).

export type Server = "floor" | "gateway";
export type Process = "runner" | "server" | "redis";

/** One load run against one server at one rate. */
export interface BenchRun {
  server: Server;
  targetRate: number;
  requests: number;
  /** Requests per second of scenario duration. */
  achievedRate: number;
  droppedIterations: number;
  /** Answers other than 202 (the first gateway answer is a 201, sent while priming, not here). */
  non202: number;
  /** Of those: 503 (the gateway shedding load) and no answer at all (timeout, refused). */
  shed503: number;
  unanswered: number;
  /** 1-minute load average when the run started: how busy the shared machine was. */
  loadAverage1m: number;
  latencyMs: { p50: number; p95: number; p99: number; max: number };
  /** How late the runner started iterations against the schedule (its own accuracy). */
  startLagP99Ms: number;
  /** Wall time between the script's setup() and teardown() markers, over which CPU is measured. */
  windowSeconds: number;
  /** Per process: average cores used, and CPU seconds per 1000 requests (= cores per 1000 req/s). */
  cpu: Record<Process, { cores: number; perThousand: number }>;
}

export interface Comparison {
  targetRate: number;
  p50Ratio: number;
  p99Ratio: number;
  /** Gateway CPU per request over floor CPU per request. */
  cpuRatio: number;
}

/** An unmeasured run with the gateway's CPU profile: where its CPU time went, per stage. */
export interface ProfileRun {
  path: "duplicate" | "creation";
  targetRate: number;
  requests: number;
  /** Answers other than the path's own (202 for duplicates, 201 for creations). */
  unexpected: number;
  /** The .cpuprofile, relative to the run folder (Chrome DevTools, speedscope). */
  file: string;
  /** Sampled busy CPU per request (idle left out); the profiler's own cost is in it. */
  busyUsPerRequest: number;
  stages: Array<{ stage: string; ms: number; share: number; usPerRequest: number }>;
}

export interface BenchResult {
  runId: string;
  startedAt: string;
  durationSeconds: number;
  settings: { rates: number[]; duration: string };
  machine: { cpus: number; loadAverage1m: number };
  runs: BenchRun[];
  comparisons: Comparison[];
  profiles: ProfileRun[];
  notes: string[];
}

export function compare(runs: BenchRun[]): Comparison[] {
  const rates = [...new Set(runs.map((r) => r.targetRate))];
  return rates.flatMap((targetRate) => {
    const floor = runs.find((r) => r.server === "floor" && r.targetRate === targetRate);
    const gateway = runs.find((r) => r.server === "gateway" && r.targetRate === targetRate);
    if (!floor || !gateway) return [];
    return [
      {
        targetRate,
        p50Ratio: gateway.latencyMs.p50 / floor.latencyMs.p50,
        p99Ratio: gateway.latencyMs.p99 / floor.latencyMs.p99,
        cpuRatio: gateway.cpu.server.perThousand / floor.cpu.server.perThousand,
      },
    ];
  });
}

const ms = (v: number) => v.toFixed(2);
const x = (v: number) => (Number.isFinite(v) ? `${v.toFixed(2)}x` : "n/a");
const cpu = (v: number) => v.toFixed(3);

function row(cells: (string | number)[]): string {
  return `| ${cells.join(" | ")} |`;
}

// Header and cell of each column of the runs table, kept side by side.
const RUN_COLUMNS: [string, (r: BenchRun) => string | number][] = [
  ["rate/s", (r) => r.targetRate],
  ["server", (r) => r.server],
  ["load avg", (r) => r.loadAverage1m.toFixed(2)],
  ["achieved/s", (r) => r.achievedRate.toFixed(1)],
  ["dropped", (r) => r.droppedIterations],
  ["non-202 (503/none)", (r) => `${r.non202} (${r.shed503}/${r.unanswered})`],
  ["p50 ms", (r) => ms(r.latencyMs.p50)],
  ["p95 ms", (r) => ms(r.latencyMs.p95)],
  ["p99 ms", (r) => ms(r.latencyMs.p99)],
  ["max ms", (r) => ms(r.latencyMs.max)],
  ["runner start lag p99 ms", (r) => ms(r.startLagP99Ms)],
  ["runner CPU", (r) => cpu(r.cpu.runner.perThousand)],
  ["server CPU", (r) => cpu(r.cpu.server.perThousand)],
  ["redis CPU", (r) => cpu(r.cpu.redis.perThousand)],
];

/** Stages as rows, one pair of columns (µs per request, share) per profiled path. */
function profileTable(profiles: ProfileRun[]): string[] {
  if (profiles.length === 0) return [];
  const stages = profiles[0]?.stages.map((s) => s.stage) ?? [];
  const cell = (p: ProfileRun, stage: string) => {
    const s = p.stages.find((x) => x.stage === stage);
    return s ? `${s.usPerRequest.toFixed(1)} (${(s.share * 100).toFixed(1)} %)` : "-";
  };
  return [
    "## Where the gateway's CPU goes (CPU profiles, not the measured runs above)",
    "",
    ...profiles.map(
      (p) =>
        `- ${p.path} path at ${p.targetRate}/s: ${p.requests} requests (${p.unexpected} unexpected answers), ${p.busyUsPerRequest.toFixed(1)} µs busy CPU per request sampled; profile [${p.file}](${p.file})`,
    ),
    "",
    'Per stage, µs of CPU per request (share of the busy time): a sample counts for the innermost frame of a known stage; "other" is node\'s own event loop, streams and sockets.',
    "",
    row(["stage", ...profiles.map((p) => `${p.path} at ${p.targetRate}/s`)]),
    row(Array(profiles.length + 1).fill("---")),
    ...stages.map((stage) => row([stage, ...profiles.map((p) => cell(p, stage))])),
    "",
  ];
}

export function markdown(result: BenchResult): string {
  const lines = [
    `# Duplicate path: gateway vs raw floor (${result.runId})`,
    "",
    `${result.startedAt}, ${result.durationSeconds} s, ${result.machine.cpus} CPUs (load average ${result.machine.loadAverage1m.toFixed(2)} at start).`,
    `Each run: ${result.settings.duration} at a constant arrival rate of the same alert (every answer a duplicate 202),`,
    "floor and gateway alternating. Floor = fastify parsing the body + one Redis HINCRBY, same Redis.",
    "CPU columns: CPU seconds per 1000 requests (= cores per 1000 req/s), from /proc/<pid>/stat.",
    "",
    row(RUN_COLUMNS.map(([header]) => header)),
    row(RUN_COLUMNS.map(() => "---")),
    ...result.runs.map((r) => row(RUN_COLUMNS.map(([, cell]) => cell(r)))),
    "",
    row(["rate/s", "p50 gateway/floor", "p99 gateway/floor", "CPU per request gateway/floor"]),
    row(Array(4).fill("---")),
    ...result.comparisons.map((c) => row([c.targetRate, x(c.p50Ratio), x(c.p99Ratio), x(c.cpuRatio)])),
    "",
    ...profileTable(result.profiles),
    ...(result.notes.length > 0 ? ["Notes:", ...result.notes.map((n) => `- ${n}`), ""] : []),
  ];
  return lines.join("\n");
}
