// Runner honesty: the embedded runner must report what a server really did. A known delay must be
// measured as such at the intended rate, and a stalled server must show as long latencies and
// dropped iterations while the send schedule keeps its pace (no coordinated omission).
import { afterEach, describe, expect, it } from "vitest";
import { runCli, values } from "./support/run-cli.js";
import { startTimedServer, type TimedServer } from "./support/timed-server.js";

const FIXTURE = "load/test/fixtures/open-model.ts";
let server: TimedServer | undefined;

afterEach(async () => {
  await server?.close();
  server = undefined;
});

const between = (list: number[], from: number, to: number) => list.filter((t) => t >= from && t < to).length;

describe("embedded runner, open model", () => {
  it("measures a 20 ms server delay at 200 req/s without dropping iterations", async () => {
    server = await startTimedServer(() => 20 + Math.random() * 2);
    // maxVUs leaves room for the shared machine's hiccups: 20 ms at 200/s needs only ~4 VUs.
    const run = await runCli(FIXTURE, {
      TARGET: server.url,
      RATE: "200",
      DURATION: "5s",
      PRE_VUS: "20",
      MAX_VUS: "1000",
    });
    expect(run.code, run.stderr).toBe(0);

    const duration = values(run, "http_req_duration");
    expect(duration.med).toBeGreaterThanOrEqual(20);
    expect(duration.med).toBeLessThanOrEqual(35);
    expect(values(run, "iterations").count).toBe(1000);
    expect(run.summary?.metrics.dropped_iterations).toBeUndefined();

    // The rate as the server saw it, not as the runner reports it.
    const { arrivals } = server;
    expect(arrivals.length).toBe(1000);
    const achieved = (arrivals.length - 1) / (((arrivals.at(-1) as number) - (arrivals[0] as number)) / 1000);
    expect(achieved).toBeGreaterThan(200 * 0.95);
    expect(achieved).toBeLessThan(200 * 1.05);
  });

  it("reports a 2 s stall as dropped iterations and a p99 >= 1 s, keeping the send schedule", async () => {
    const stall = { from: 2000, to: 4000 };
    server = await startTimedServer((now, first) => {
      const t = now - first;
      return t >= stall.from && t < stall.to ? stall.to - t : 2;
    });
    const run = await runCli(FIXTURE, {
      TARGET: server.url,
      RATE: "200",
      DURATION: "6s",
      PRE_VUS: "10",
      MAX_VUS: "50",
    });
    expect(run.code, run.stderr).toBe(0);

    const dropped = values(run, "dropped_iterations").count as number;
    const completed = values(run, "iterations").count as number;
    expect(dropped).toBeGreaterThan(0);
    expect(values(run, "http_req_duration")["p(99)"]).toBeGreaterThanOrEqual(1000);
    expect(values(run, "http_req_duration_intended")["p(99)"]).toBeGreaterThanOrEqual(1000);
    // Every scheduled iteration either ran or was counted as dropped: the schedule never slowed.
    expect(completed + dropped).toBeGreaterThanOrEqual(1200 * 0.98);
    expect(completed + dropped).toBeLessThanOrEqual(1200);

    const first = server.arrivals[0] as number;
    // During the stall only the 50 VUs' requests got out; after it, the old pace, no catch-up burst.
    expect(between(server.arrivals, first + stall.from, first + stall.to)).toBeLessThanOrEqual(50);
    const after = between(server.arrivals, first + stall.to, first + stall.to + 1000);
    expect(after).toBeGreaterThan(200 * 0.85);
    expect(after).toBeLessThan(200 * 1.15);
  });
});
