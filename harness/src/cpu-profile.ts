// CPU profiles of a node process started with `--inspect=127.0.0.1:<port>`, taken over the
// DevTools protocol only while a measured window runs (the rest of the process's life stays
// out), saved as .cpuprofile (Chrome DevTools, speedscope), and summed per stage: where a
// request's CPU time goes.
import { WebSocket } from "undici";

/** A .cpuprofile as V8 writes it. */
export interface CpuProfile {
  nodes: Array<{
    id: number;
    callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
    children?: number[];
  }>;
  startTime: number;
  endTime: number;
  samples: number[];
  /** Microseconds between consecutive samples. */
  timeDeltas: number[];
}

/** A stage: the first one whose test matches a frame, walking from the sampled frame to the root. */
export interface Stage {
  name: string;
  matches: (frame: { functionName: string; url: string }) => boolean;
}

export interface StageTime {
  stage: string;
  ms: number;
  /** Of the profile's busy time (idle and the program's own bookkeeping left out). */
  share: number;
}

/** V8's pseudo-frames: time the process spent waiting, not working. */
const IDLE = new Set(["(idle)", "(program)"]);

export class Inspector {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();

  private constructor(private readonly socket: WebSocket) {
    socket.addEventListener("message", (event) => {
      const msg = JSON.parse(String(event.data)) as { id?: number; result?: unknown; error?: { message: string } };
      const waiter = msg.id === undefined ? undefined : this.pending.get(msg.id);
      if (!waiter || msg.id === undefined) return;
      this.pending.delete(msg.id);
      if (msg.error) waiter.reject(new Error(msg.error.message));
      else waiter.resolve(msg.result);
    });
  }

  /** Connects to the inspector of the process listening on `port` (its first target). */
  static async connect(port: number): Promise<Inspector> {
    const res = await fetch(`http://127.0.0.1:${port}/json/list`, { signal: AbortSignal.timeout(5000) });
    const [target] = (await res.json()) as Array<{ webSocketDebuggerUrl: string }>;
    if (!target) throw new Error(`no inspector target on 127.0.0.1:${port}`);
    const socket = new WebSocket(target.webSocketDebuggerUrl);
    await new Promise<void>((resolve, reject) => {
      socket.addEventListener("open", () => resolve(), { once: true });
      socket.addEventListener("error", () => reject(new Error(`inspector on 127.0.0.1:${port} refused`)), {
        once: true,
      });
    });
    return new Inspector(socket);
  }

  private send<T>(method: string, params: Record<string, unknown> = {}): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.socket.send(JSON.stringify({ id, method, params }));
    });
  }

  /** The CPU profile of the process while `during` runs, sampled every `intervalUs`. */
  async profile<T>(during: () => Promise<T>, intervalUs = 200): Promise<{ result: T; profile: CpuProfile }> {
    await this.send("Profiler.enable");
    await this.send("Profiler.setSamplingInterval", { interval: intervalUs });
    await this.send("Profiler.start");
    const stop = async () => {
      const { profile } = await this.send<{ profile: CpuProfile }>("Profiler.stop");
      await this.send("Profiler.disable");
      return profile;
    };
    let result: T;
    try {
      result = await during();
    } catch (err) {
      await stop().catch(() => undefined);
      throw err;
    }
    return { result, profile: await stop() };
  }

  close(): void {
    this.socket.close();
  }
}

/**
 * Busy time per stage: each sample goes to the stage of the innermost frame some stage matches
 * (so time in a library called from the pipeline counts as that library's stage), else "other".
 */
export function stageTimes(profile: CpuProfile, stages: Stage[]): StageTime[] {
  const parent = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const stageOf = new Map<number, string | null>();
  const classify = (id: number): string | null => {
    const known = stageOf.get(id);
    if (known !== undefined) return known;
    const node = byId.get(id);
    let stage: string | null = "other";
    if (node && IDLE.has(node.callFrame.functionName)) stage = null;
    else if (node) {
      const own = stages.find((s) => s.matches(node.callFrame))?.name;
      const up = parent.get(id);
      stage = own ?? (up === undefined ? "other" : classify(up));
    }
    stageOf.set(id, stage);
    return stage;
  };
  const us = new Map<string, number>();
  profile.samples.forEach((id, i) => {
    const stage = classify(id);
    if (stage) us.set(stage, (us.get(stage) ?? 0) + (profile.timeDeltas[i] ?? 0));
  });
  const busy = [...us.values()].reduce((a, b) => a + b, 0);
  return [...stages.map((s) => s.name), "other"]
    .filter((name, i, all) => all.indexOf(name) === i)
    .map((stage) => ({ stage, ms: (us.get(stage) ?? 0) / 1000, share: busy > 0 ? (us.get(stage) ?? 0) / busy : 0 }));
}
