import { describe, expect, it } from "vitest";
import { eventually } from "../../../harness/src/poll.js";
import type { Signal } from "../../src/types.js";
import { apiServerRequests, listRRs, metricValue, pipelineOnRealStack, podAlert } from "./stack.js";

const NS = "paced";
const RATE = 4;

/** D3 under a write budget: status.deduplication writes are paced, fair, and converge to the latest counts. */
describe("status.deduplication writes within statusWriteRate", () => {
  const stack = pipelineOnRealStack(
    { [NS]: {} },
    {
      processing: { deduplication: { statusFlushInterval: "100ms", statusWriteRate: RATE }, storm: { enabled: false } },
    },
  );

  const process = (signal: Signal) => stack.run.pipeline.process(signal, { requestId: "paced" });

  /** Status PATCHes of RemediationRequests the API server has served (its own metrics). */
  const statusPatches = () => apiServerRequests(stack.kube, { subresource: "status", verb: "PATCH" });

  it("writes every changed count at the configured rate, a busy request not starving the others", async () => {
    const signals = Array.from({ length: 12 }, () => podAlert({ namespace: NS }));
    for (const signal of signals) expect((await process(signal)).status).toBe("created");
    const hot = signals[0] as Signal;
    const expected = new Map(signals.map((s) => [s.fingerprint, 2]));
    expected.set(hot.fingerprint, 6);

    const patchesBefore = await statusPatches();
    const started = Date.now();
    for (const signal of signals) expect((await process(signal)).status).toBe("duplicate");
    // The busy one keeps changing while the others wait for their turn.
    for (let i = 0; i < 4; i++) expect((await process(hot)).status).toBe("duplicate");

    await eventually(
      async () => {
        const rrs = await listRRs(stack.kube, NS);
        return signals.every(
          (s) =>
            rrs.find((rr) => rr.spec.signalFingerprint === s.fingerprint)?.status?.deduplication?.occurrenceCount ===
            expected.get(s.fingerprint),
        );
      },
      { what: "every request to show its latest count", timeoutMs: 20_000, intervalMs: 200 },
    );
    const elapsedSeconds = (Date.now() - started) / 1000;
    const writes = (await statusPatches()) - patchesBefore;
    // Every changed request was written (some twice: a count that moved is written again) ...
    expect(writes).toBeGreaterThanOrEqual(signals.length);
    // ... and never faster than the budget allows (a tenth of a second's worth may be saved up).
    expect(writes).toBeLessThanOrEqual(RATE * elapsedSeconds + Math.max(1, RATE / 10) + 1);
    expect(elapsedSeconds).toBeGreaterThanOrEqual((signals.length - 1) / RATE);
    await eventually(async () => (await metricValue(stack.run.metrics, "gateway_dedup_status_backlog")) === 0, {
      what: "the backlog gauge to reach 0",
    });
  });
});
