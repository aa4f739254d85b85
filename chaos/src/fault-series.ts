// chaos_fault_active{experiment,fault}: 1 while a fault is injected, 0 otherwise, remote-written
// into the run's own Prometheus. The Chaos dashboard (grafana/src/dashboards/chaos.ts) draws its
// fault windows from it, also when the run's kept TSDB is opened later (grafana:up RUN=<run-id>).
import type { TimeSeries } from "../../load/runner/engine/prom-write-request.js";
import { writeSeries } from "../../load/runner/engine/remote-write.js";

const METRIC = "chaos_fault_active";
const PUSH_INTERVAL_MS = 1_000;

export class FaultSeries {
  /** By fault name: a fault that repeats is one series. */
  private readonly active = new Map<string, boolean>();
  private timer: NodeJS.Timeout | undefined;
  private lastTimestamp = 0;
  private pending: Promise<void> = Promise.resolve();
  private queued = 0;
  private failed = false;

  constructor(
    private readonly url: string,
    private readonly experiment: string,
    faults: string[],
    private readonly note: (line: string) => void,
  ) {
    for (const fault of faults) this.active.set(fault, false);
  }

  /** Pushes the zeros now, then every fault's value every second until stop(). */
  start(): Promise<void> {
    // A Prometheus slow to answer gets one tick at a time, not a queue that teardown would wait out.
    this.timer = setInterval(() => {
      if (this.queued === 0) void this.push();
    }, PUSH_INTERVAL_MS);
    this.timer.unref();
    return this.push();
  }

  /** Pushes the change at once, so a fault shorter than the interval shows too. */
  set(fault: string, active: boolean): Promise<void> {
    this.active.set(fault, active);
    return this.push();
  }

  /** Stops the timer and pushes a last 0 for every fault. */
  stop(): Promise<void> {
    clearInterval(this.timer);
    for (const fault of this.active.keys()) this.active.set(fault, false);
    return this.push();
  }

  /**
   * Queues one sample per fault with the values of now. Pushes go out one at a time, in order:
   * Prometheus drops a sample that is not newer than the last one of its series. A failed push
   * never fails the run; the first one is noted.
   */
  private push(): Promise<void> {
    const timestampMs = Math.max(Date.now(), this.lastTimestamp + 1);
    this.lastTimestamp = timestampMs;
    const series: TimeSeries[] = [...this.active].map(([fault, active]) => ({
      labels: [
        ["__name__", METRIC],
        ["experiment", this.experiment],
        ["fault", fault],
      ],
      samples: [{ value: active ? 1 : 0, timestampMs }],
    }));
    this.queued++;
    this.pending = this.pending
      .then(() => writeSeries(this.url, series, "chaos-runner"))
      .catch((err: Error) => {
        if (!this.failed) this.note(`${METRIC}: remote write failed: ${err.message}`);
        this.failed = true;
      })
      .finally(() => {
        this.queued--;
      });
    return this.pending;
  }
}
