// When each iteration of an arrival-rate scenario is meant to start. The schedule depends only on
// the configured rate, never on how fast the system answers: that is what keeps the model open.
import type { ScenarioConfig } from "./options.js";

interface Segment {
  startMs: number;
  durationMs: number;
  /** Rates in iterations per millisecond at the segment's start and end (linear in between). */
  fromRate: number;
  toRate: number;
  /** Iterations scheduled before this segment. */
  before: number;
  /** Iterations scheduled within it (the area under the rate line). */
  area: number;
}

export class ArrivalSchedule {
  private readonly segments: Segment[] = [];
  readonly durationMs: number;
  private cursor = 0;

  constructor(config: Pick<ScenarioConfig, "startRate" | "stages" | "timeUnitMs">) {
    let startMs = 0;
    let before = 0;
    let fromRate = config.startRate / config.timeUnitMs;
    for (const stage of config.stages) {
      const toRate = stage.target / config.timeUnitMs;
      const area = ((fromRate + toRate) / 2) * stage.durationMs;
      this.segments.push({ startMs, durationMs: stage.durationMs, fromRate, toRate, before, area });
      startMs += stage.durationMs;
      before += area;
      fromRate = toRate;
    }
    this.durationMs = startMs;
  }

  /**
   * Offset (ms from the scenario start) of iteration `i`, the moment the cumulative arrivals reach
   * i; undefined once the scenario has no time left. Calls must come with non-decreasing `i`.
   */
  offsetOf(i: number): number | undefined {
    while (this.cursor < this.segments.length) {
      const s = this.segments[this.cursor] as Segment;
      if (i < s.before + s.area) return s.startMs + timeWithin(s, i - s.before);
      this.cursor++;
    }
    return undefined;
  }

  /** Intended iterations per second at `offsetMs` (for the progress line). */
  rateAt(offsetMs: number): number {
    const s = this.segments.find((seg) => offsetMs < seg.startMs + seg.durationMs);
    if (!s) return 0;
    const f = (offsetMs - s.startMs) / s.durationMs;
    return (s.fromRate + (s.toRate - s.fromRate) * f) * 1000;
  }
}

/** Solves fromRate·t + slope·t²/2 = n for t, the time at which `n` arrivals have accumulated. */
function timeWithin(s: Segment, n: number): number {
  const slope = (s.toRate - s.fromRate) / s.durationMs;
  if (Math.abs(slope) < 1e-15) return n / s.fromRate;
  const t = (-s.fromRate + Math.sqrt(Math.max(0, s.fromRate * s.fromRate + 2 * slope * n))) / slope;
  return Math.min(s.durationMs, Math.max(0, t));
}
