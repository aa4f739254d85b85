import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { StartedKubeApiServer } from "../../../harness/src/components/kube-api.js";
import { RedisServer, type StartedRedisServer } from "../../../harness/src/components/redis.js";
import { eventually } from "../../../harness/src/poll.js";
import { freePort } from "../../../harness/src/ports.js";
import type { Signal } from "../../src/types.js";
import {
  apiServerRequests,
  listRRs,
  metricValue,
  podAlert,
  type RunningPipeline,
  startKube,
  startPipeline,
  testConfig,
} from "./stack.js";

const NS = "paced";
const RATE = 4;

/** D3 under a write budget: status.deduplication writes are paced, fair, and converge to the latest counts. */
describe("status.deduplication writes within statusWriteRate", () => {
  let redis: StartedRedisServer;
  let kube: StartedKubeApiServer;
  let run: RunningPipeline;

  beforeAll(async () => {
    [redis, kube] = await Promise.all([new RedisServer().start(), startKube({ [NS]: {} })]);
    run = await startPipeline(
      testConfig({
        redis: { url: redis.getConnectionUrl() },
        kubernetes: { kubeconfigPath: kube.getKubeconfigPath() },
        dataStorage: { url: `http://127.0.0.1:${await freePort()}` },
        processing: {
          deduplication: { statusFlushInterval: "100ms", statusWriteRate: RATE },
          storm: { enabled: false },
        },
      }),
    );
  });

  afterAll(async () => {
    await run?.pipeline.close();
    await Promise.all([redis?.stop(), kube?.stop()]);
  });

  const process = (signal: Signal) => run.pipeline.process(signal, { requestId: "paced" });

  /** Status PATCHes of RemediationRequests the API server has served (its own metrics). */
  const statusPatches = () => apiServerRequests(kube, { subresource: "status", verb: "PATCH" });

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
        const rrs = await listRRs(kube, NS);
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
    await eventually(async () => (await metricValue(run.metrics, "gateway_dedup_status_backlog")) === 0, {
      what: "the backlog gauge to reach 0",
    });
  });
});
