// Arrival-rate schedules and scenario options: when iterations are due, and clear errors for bad options.
import { describe, expect, it } from "vitest";
import { ArrivalSchedule } from "../runner/engine/arrival-schedule.js";
import { parseDuration } from "../runner/engine/duration.js";
import { normalizeOptions } from "../runner/engine/options.js";

function offsets(schedule: ArrivalSchedule): number[] {
  const out: number[] = [];
  for (let i = 0; ; i++) {
    const offset = schedule.offsetOf(i);
    if (offset === undefined) return out;
    out.push(offset);
  }
}

describe("arrival schedule", () => {
  it("spaces a constant rate evenly over the duration", () => {
    const schedule = new ArrivalSchedule({
      startRate: 200,
      timeUnitMs: 1000,
      stages: [{ target: 200, durationMs: 5000 }],
    });
    const all = offsets(schedule);
    expect(all).toHaveLength(1000);
    expect(all.slice(0, 3)).toEqual([0, 5, 10]);
    expect(all.at(-1)).toBeCloseTo(4995, 6);
    expect(schedule.rateAt(2500)).toBeCloseTo(200, 6);
  });

  it("honours timeUnit", () => {
    const schedule = new ArrivalSchedule({
      startRate: 30,
      timeUnitMs: 60_000,
      stages: [{ target: 30, durationMs: 60_000 }],
    });
    expect(offsets(schedule)).toHaveLength(30);
  });

  it("ramps linearly: the number of arrivals is the area under the rate", () => {
    const schedule = new ArrivalSchedule({
      startRate: 0,
      timeUnitMs: 1000,
      stages: [
        { target: 100, durationMs: 10_000 }, // 500 arrivals
        { target: 100, durationMs: 5_000 }, // 500
        { target: 0, durationMs: 10_000 }, // 500
      ],
    });
    const all = offsets(schedule);
    expect(all).toHaveLength(1500);
    // Half of the first ramp's arrivals come in its last 30 %: 250 arrivals by t = sqrt(0.5) * 10 s.
    expect(all[250]).toBeCloseTo(Math.SQRT1_2 * 10_000, 0);
    expect(all.every((t, i) => i === 0 || t >= (all[i - 1] as number))).toBe(true);
    expect(schedule.rateAt(5_000)).toBeCloseTo(50, 6);
    expect(schedule.rateAt(12_000)).toBeCloseTo(100, 6);
    expect(schedule.durationMs).toBe(25_000);
  });
});

describe("scenario options", () => {
  const scenario = (extra: Record<string, unknown>) => ({
    scenarios: { s: { executor: "constant-arrival-rate", rate: 10, duration: "1s", preAllocatedVUs: 1, ...extra } },
  });

  it("normalizes an arrival-rate scenario with k6 defaults", () => {
    const options = normalizeOptions({ ...scenario({}), tags: { testid: "a" } }, { testid: "cli" });
    expect(options.tags).toEqual({ testid: "cli" });
    expect(options.scenarios[0]).toMatchObject({
      name: "s",
      exec: "default",
      timeUnitMs: 1000,
      gracefulStopMs: 30_000,
      startTimeMs: 0,
      maxVUs: 1,
      startRate: 10,
      stages: [{ target: 10, durationMs: 1000 }],
    });
    expect(options.summaryTrendStats).toEqual(["avg", "min", "med", "max", "p(90)", "p(95)"]);
  });

  it.each([
    [scenario({ executor: "constant-vus" }), /options\.scenarios\.s\.executor: "constant-vus" is not supported/],
    [scenario({ rate: 0 }), /options\.scenarios\.s\.rate: must be a positive number \(got: 0\)/],
    [scenario({ rate: Number.NaN }), /rate: must be a positive number \(got: NaN\)/],
    [scenario({ duration: "soon" }), /options\.scenarios\.s\.duration: must be a duration/],
    [scenario({ maxVUs: 0 }), /maxVUs: must be at least preAllocatedVUs/],
    [scenario({ preAllocatedVUs: undefined }), /preAllocatedVUs: must be a non-negative integer/],
    [{ vus: 10, duration: "1m" }, /options\.vus: closed-model shortcuts are not supported/],
    [{}, /options\.scenarios: declare at least one scenario/],
    [{ ...scenario({}), summaryTrendStats: ["p99"] }, /options\.summaryTrendStats/],
    [
      { scenarios: { r: { executor: "ramping-arrival-rate", preAllocatedVUs: 1, stages: [{ target: 5 }] } } },
      /options\.scenarios\.r\.stages\[0\]\.duration: must be a duration/,
    ],
  ])("rejects %j", (raw, message) => {
    expect(() => normalizeOptions(raw, {})).toThrow(message);
  });
});

describe("durations", () => {
  it("parses k6 duration strings and plain milliseconds", () => {
    expect(parseDuration("1h30m", "d")).toBe(5_400_000);
    expect(parseDuration("1m30.5s", "d")).toBe(90_500);
    expect(parseDuration("250ms", "d")).toBe(250);
    expect(parseDuration(1500, "d")).toBe(1500);
    expect(() => parseDuration("10", "params.timeout")).toThrow(
      'params.timeout: must be a duration like "30s", "2m" or "1h30m" (got: "10")',
    );
  });
});
