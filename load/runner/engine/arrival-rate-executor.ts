// Runs one arrival-rate scenario (open model). Iterations start at the times the schedule says,
// driven by the clock and never by completions: if every VU is busy (up to maxVUs) the iteration
// is dropped and counted in dropped_iterations. A stalled server therefore shows up as long
// latencies plus dropped iterations, not as a quietly lowered send rate.
import { setTimeout as delay } from "node:timers/promises";
import { ArrivalSchedule } from "./arrival-schedule.js";
import { IterationAborted } from "./errors.js";
import { type Tags, tagsKey } from "./metrics.js";
import type { ScenarioConfig } from "./options.js";
import { builtin, contexts, type ScenarioRuntime, sampleTags, test, type VU } from "./runtime.js";

export interface ExecutorDeps {
  exec: (data: unknown) => unknown;
  setupData: unknown;
  /** Allocates test-wide VU ids (1, 2, ...). */
  nextVuId: () => number;
  reportError: (scenario: string, err: unknown) => void;
}

export class ArrivalRateExecutor {
  readonly runtime: ScenarioRuntime;
  readonly schedule: ArrivalSchedule;
  /** Counters for the progress line. */
  allocatedVUs = 0;
  busyVUs = 0;
  dropped = 0;
  startMs = 0;
  state: "waiting" | "running" | "draining" | "done" = "waiting";

  private readonly idle: VU[] = [];
  private readonly stopScheduling = new AbortController();
  private readonly stopRequests = new AbortController();
  private readonly tags: Tags;
  private readonly tagsKey: string;
  private onIdle: (() => void) | undefined;

  constructor(
    readonly config: ScenarioConfig,
    private readonly deps: ExecutorDeps,
  ) {
    this.schedule = new ArrivalSchedule(config);
    this.tags = { ...test.tags, ...config.tags, scenario: config.name };
    this.tagsKey = tagsKey(this.tags);
    this.runtime = {
      config,
      env: { ...test.env, ...config.env },
      tags: this.tags,
      startUnixMs: 0,
      progress: () =>
        this.state === "waiting" ? 0 : Math.min(1, (performance.now() - this.startMs) / this.schedule.durationMs),
      stopped: false,
      signal: this.stopRequests.signal,
    };
  }

  async run(testStartMs: number): Promise<void> {
    if (!(await this.sleepUntil(testStartMs + this.config.startTimeMs))) return this.finish();
    this.startMs = performance.now();
    this.runtime.startUnixMs = Date.now();
    this.state = "running";
    for (let i = 0; i < this.config.preAllocatedVUs; i++) this.idle.push(this.newVU());
    for (let i = 0; ; i++) {
      const offset = this.schedule.offsetOf(i);
      if (offset === undefined) break;
      const due = this.startMs + offset;
      if (due > performance.now() && !(await this.sleepUntil(due))) break;
      this.dispatch(i, due);
    }
    // The scenario lasts its full duration even when the last arrival came earlier, as in k6.
    await this.sleepUntil(this.startMs + this.schedule.durationMs);
    this.state = "draining";
    await this.drain();
    this.finish();
  }

  /** Stops at once: no new iterations, in-flight ones are interrupted (test abort). */
  stop(): void {
    this.stopScheduling.abort();
  }

  /** Intended iterations per second right now. */
  currentRate(): number {
    return this.state === "running" ? this.schedule.rateAt(performance.now() - this.startMs) : 0;
  }

  private finish(): void {
    this.state = "done";
  }

  /** Sleeps until `atMs` (never earlier: timers round to whole milliseconds); false if stopped. */
  private async sleepUntil(atMs: number): Promise<boolean> {
    try {
      for (let left = atMs - performance.now(); left > 0; left = atMs - performance.now()) {
        await delay(Math.ceil(left), undefined, { signal: this.stopScheduling.signal });
      }
      return !this.stopScheduling.signal.aborted;
    } catch {
      return false;
    }
  }

  private newVU(): VU {
    this.allocatedVUs++;
    test.counters.vusInitialized++;
    const id = this.deps.nextVuId();
    return { idInTest: id, idInInstance: id, iterationInInstance: 0, iterationInScenario: 0, tags: {} };
  }

  private dispatch(index: number, intendedStartMs: number): void {
    let vu = this.idle.pop();
    if (!vu && this.allocatedVUs < this.config.maxVUs) vu = this.newVU();
    if (!vu) {
      this.dropped++;
      builtin.droppedIterations.add(1, this.tags, this.tagsKey);
      return;
    }
    void this.iterate(vu, index, intendedStartMs);
  }

  private async iterate(vu: VU, index: number, intendedStartMs: number): Promise<void> {
    this.busyVUs++;
    test.counters.vusActive++;
    const startedMs = performance.now();
    builtin.iterationStartLag.add(startedMs - intendedStartMs, this.tags, this.tagsKey);
    const ctx = { groupPath: "", iteration: { vu, scenario: this.runtime, inScenario: index, intendedStartMs } };
    try {
      await contexts.run(ctx, () => this.deps.exec(this.deps.setupData));
    } catch (err) {
      if (!(err instanceof IterationAborted) && !this.runtime.stopped) this.deps.reportError(this.config.name, err);
    }
    if (!this.runtime.stopped) {
      const tags = sampleTags(ctx);
      builtin.iterationDuration.add(performance.now() - startedMs, tags);
      builtin.iterations.add(1, tags);
      test.counters.iterationsCompleted++;
    }
    vu.iterationInInstance++;
    vu.iterationInScenario++;
    this.busyVUs--;
    test.counters.vusActive--;
    this.idle.push(vu);
    if (this.busyVUs === 0) this.onIdle?.();
  }

  /** Waits for in-flight iterations up to gracefulStop (not at all after stop()), then interrupts them. */
  private async drain(): Promise<void> {
    if (this.busyVUs === 0) return;
    const timer = new AbortController();
    const idle = new Promise<void>((resolve) => {
      this.onIdle = resolve;
    });
    const stopped = new Promise<void>((resolve) => {
      if (this.stopScheduling.signal.aborted) resolve();
      this.stopScheduling.signal.addEventListener("abort", () => resolve(), { once: true });
    });
    const grace = delay(this.config.gracefulStopMs, undefined, { signal: timer.signal }).catch(() => undefined);
    await Promise.race([idle, stopped, grace]);
    timer.abort();
    if (this.busyVUs > 0) {
      this.runtime.stopped = true;
      test.counters.iterationsInterrupted += this.busyVUs;
      this.stopRequests.abort();
    }
  }
}
