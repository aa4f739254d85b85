// The shed-answer bound of resources/cpu, split at the fault's onset, on a made-up run record.
import { describe, expect, it } from "vitest";
import { evaluateInvariants } from "../src/checks.js";
import type { InvariantSpec } from "../src/experiment.js";
import type { Answer } from "../src/load.js";
import type { RunRecord } from "../src/runner.js";

const INJECTED = 1_000_000;
const shed = (at: number, ms: number): Answer => ({
  at: INJECTED + at,
  ms,
  status: 503,
  retryAfter: true,
  contentType: "application/problem+json",
  signals: 1,
  kind: "valid",
});

/** 100 sheds in the first second taking `onsetMs`, 900 after it taking `afterMs`. */
function run(onsetMs: number, afterMs: number): RunRecord {
  const answers = [
    ...Array.from({ length: 100 }, (_, i) => shed(i * 10, onsetMs)),
    ...Array.from({ length: 900 }, (_, i) => shed(1_000 + i * 10, afterMs)),
  ];
  return {
    load: { answers },
    faults: [{ injectedAt: INJECTED, removedAt: INJECTED + 10_000 }],
    duringFaults: () => answers,
  } as unknown as RunRecord;
}

const spec: InvariantSpec = { kind: "shed-during-fault", min: 100, p99Ms: 1_000, onset: { ms: 1_000, p99Ms: 2_000 } };
const verdicts = async (r: RunRecord) =>
  Object.fromEntries((await evaluateInvariants([spec], r)).checks.map((c) => [c.name, c.ok]));

describe("shed-during-fault with an onset", () => {
  it("bounds the first second and the rest of the fault apart", async () => {
    expect(await verdicts(run(1_500, 150))).toEqual({
      "requests shed with 503/429 + Retry-After during the fault": true,
      "shed answers in a fault's first 1 s: their p99 (ms)": true,
      "shed answers came back quickly after that: their p99 (ms)": true,
    });
  });

  it("fails a slow onset, and slow sheds after it", async () => {
    expect(await verdicts(run(2_500, 150))).toMatchObject({
      "shed answers in a fault's first 1 s: their p99 (ms)": false,
    });
    expect(await verdicts(run(500, 1_200))).toMatchObject({
      "shed answers in a fault's first 1 s: their p99 (ms)": true,
      "shed answers came back quickly after that: their p99 (ms)": false,
    });
  });
});
