// The live progress line (every second): elapsed, achieved vs intended rate, errors, dropped
// iterations, p99 so far and busy VUs. Rewritten in place on a terminal, one line per tick otherwise.
import type { ArrivalRateExecutor } from "./arrival-rate-executor.js";
import { formatDuration } from "./duration.js";
import { builtin, test } from "./runtime.js";

export class Progress {
  private timer: NodeJS.Timeout | undefined;
  private lastCount = 0;
  private lastMs = 0;

  constructor(
    private readonly executors: ArrivalRateExecutor[],
    private readonly out: NodeJS.WriteStream,
    private readonly plannedMs: number,
  ) {}

  start(): void {
    this.lastMs = performance.now();
    this.timer = setInterval(() => this.render(), 1000);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    if (this.out.isTTY) this.out.write("\n");
  }

  private line(): string {
    const now = performance.now();
    const count = builtin.httpReqs.total.stat("count", 0) ?? 0;
    const rate = (count - this.lastCount) / Math.max(0.001, (now - this.lastMs) / 1000);
    this.lastCount = count;
    this.lastMs = now;
    const target = this.executors.reduce((sum, e) => sum + e.currentRate(), 0);
    const failed = builtin.httpReqFailed.total.stat("passes", 0) ?? 0;
    const dropped = this.executors.reduce((sum, e) => sum + e.dropped, 0);
    const busy = this.executors.reduce((sum, e) => sum + e.busyVUs, 0);
    const allocated = this.executors.reduce((sum, e) => sum + e.allocatedVUs, 0);
    const p99 = builtin.httpReqDuration.total.stat("p(99)", 0) ?? 0;
    const lag = builtin.iterationStartLag.total.stat("p(99)", 0) ?? 0;
    return [
      `running (${formatDuration(now - test.startMs)}/${formatDuration(this.plannedMs)})`,
      `${rate.toFixed(0)}/s (target ${target.toFixed(0)}/s)`,
      `reqs ${count}`,
      `failed ${failed} (${count > 0 ? ((100 * failed) / count).toFixed(2) : "0.00"}%)`,
      `dropped ${dropped}`,
      `p99 ${p99.toFixed(1)}ms`,
      `start lag p99 ${lag.toFixed(1)}ms`,
      `VUs ${busy} busy/${allocated}`,
    ].join(" | ");
  }

  private render(): void {
    const line = this.line();
    this.out.write(this.out.isTTY ? `\r\x1b[2K${line}` : `${line}\n`);
  }
}
