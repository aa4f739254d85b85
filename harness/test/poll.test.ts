import { describe, expect, it } from "vitest";
import { untilSettled } from "../src/poll.js";

describe("untilSettled", () => {
  it("keeps waiting past the stall time while the samples keep changing, and returns when done", async () => {
    let n = 0;
    const started = Date.now();
    const value = await untilSettled(
      async () => ++n,
      (v) => v === 8,
      { stallMs: 30, maxMs: 5_000, intervalMs: 10, maxIntervalMs: 10 },
    );
    expect(value).toBe(8);
    expect(Date.now() - started).toBeGreaterThan(30);
  });

  it("gives up with the last sample once the samples stop changing", async () => {
    let n = 0;
    const started = Date.now();
    const value = await untilSettled(
      async () => Math.min(++n, 3),
      (v) => v === 10,
      { stallMs: 50, maxMs: 5_000, intervalMs: 5, maxIntervalMs: 5 },
    );
    expect(value).toBe(3);
    expect(Date.now() - started).toBeLessThan(2_000);
  });

  it("gives up at maxMs even while the samples keep changing", async () => {
    let n = 0;
    const started = Date.now();
    const value = await untilSettled(
      async () => ++n,
      () => false,
      { stallMs: 10_000, maxMs: 100, intervalMs: 5, maxIntervalMs: 5 },
    );
    expect(value).toBeGreaterThan(1);
    expect(Date.now() - started).toBeLessThan(2_000);
  });

  it("retries a failing sample and throws its error when no sample ever succeeded", async () => {
    let calls = 0;
    const flaky = async () => {
      if (++calls < 3) throw new Error("not yet");
      return "ok";
    };
    await expect(untilSettled(flaky, (v) => v === "ok", { stallMs: 1_000, maxMs: 5_000, intervalMs: 5 })).resolves.toBe(
      "ok",
    );
    const broken = async (): Promise<string> => {
      throw new Error("API server unreachable");
    };
    await expect(untilSettled(broken, () => true, { stallMs: 30, maxMs: 5_000, intervalMs: 5 })).rejects.toThrow(
      "API server unreachable",
    );
  });
});
