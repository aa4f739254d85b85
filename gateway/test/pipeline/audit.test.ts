import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DataStorageService, type StartedDataStorageService } from "../../../harness/src/components/data-storage.js";
import { eventually } from "../../../harness/src/poll.js";
import { AuditTrail } from "../../src/audit.js";
import type { AuditEvent } from "../../src/audit-events.js";
import { createMetrics } from "../../src/metrics.js";
import type { GatewayConfig } from "../../src/types.js";
import { metricValue, testConfig, testLog } from "./stack.js";

const event = (correlation: string, n: number, padBytes = 0): AuditEvent => ({
  version: "1.0",
  event_type: "gateway.signal.received",
  event_timestamp: new Date().toISOString(),
  event_category: "gateway",
  event_action: "received",
  event_outcome: "success",
  correlation_id: correlation,
  event_data: { n, ...(padBytes ? { pad: "p".repeat(padBytes) } : {}) },
});

describe("audit trail against the real Data Storage service", () => {
  let ds: StartedDataStorageService;
  beforeAll(async () => {
    ds = await new DataStorageService().start();
  });
  afterAll(async () => {
    await ds?.stop();
  });

  const trailWith = (cfg: GatewayConfig) => {
    const metrics = createMetrics();
    const trail = new AuditTrail(() => cfg, metrics, testLog);
    trail.start();
    return { trail, metrics };
  };

  it("journals what is left at shutdown and a later run delivers it in order", async () => {
    const cfg = testConfig({
      dataStorage: { url: ds.getUrl(), bufferSize: 100, batchSize: 20 },
      shutdown: { auditFlushTimeout: "1s" },
    });
    await ds.setFault("fail");
    const first = trailWith(cfg);
    for (let i = 0; i < 250; i++) first.trail.record(event("shutdown-order", i));
    await first.trail.close();
    expect(await metricValue(first.metrics, "gateway_audit_journal_bytes")).toBeGreaterThan(0);
    expect(await metricValue(first.metrics, "gateway_audit_events_dropped_total")).toBe(0);

    await ds.setFault("none");
    const second = trailWith(cfg);
    second.trail.record(event("shutdown-order", 250));
    const stored = await eventually(
      async () => {
        const found = await ds.events({ correlation_id: "shutdown-order", limit: 1000 });
        return found.length === 251 && found;
      },
      { what: "all 251 events delivered by the next run", timeoutMs: 20_000 },
    );
    expect(stored.map((e) => e.event_data.n)).toEqual(Array.from({ length: 251 }, (_, i) => i));
    await second.trail.close();
  });

  it("drops and counts events when Data Storage is down and the journal is full, without blocking", async () => {
    const cfg = testConfig({ dataStorage: { url: ds.getUrl(), bufferSize: 100, batchSize: 50, journalMax: "1MiB" } });
    await ds.setFault("fail");
    const { trail, metrics } = trailWith(cfg);
    try {
      const started = performance.now();
      for (let i = 0; i < 400; i++) trail.record(event("journal-full", i, 10_000)); // ~4 MB for a 1 MiB journal
      expect(performance.now() - started).toBeLessThan(2_000);
      expect(
        await metricValue(metrics, "gateway_audit_events_dropped_total", { reason: "journal_full" }),
      ).toBeGreaterThan(0);
      expect(await metricValue(metrics, "gateway_audit_journal_bytes")).toBeLessThanOrEqual(1 << 20);
    } finally {
      await ds.setFault("none");
      await trail.close();
    }
  });
});
