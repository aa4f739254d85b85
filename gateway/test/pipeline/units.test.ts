import { mkdtempSync, readdirSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { KubeConfig } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Tmpfs } from "../../../harness/src/host/tmpfs.js";
import type { AuditEvent } from "../../src/audit-events.js";
import { AuditJournal, JournalWriteError } from "../../src/audit-journal.js";
import { defaultConfig } from "../../src/config.js";
import { KubeApiError, KubeClient } from "../../src/kube.js";
import {
  buildRemediationRequest,
  durationText,
  labelValue,
  remediationRequestName,
} from "../../src/remediation-request.js";
import { backoffDelay, withRetry } from "../../src/retry.js";
import { parseRef } from "../../src/status-flusher.js";
import { MemoryStormStore, type StormCheck } from "../../src/storm-store.js";
import { nodeAlert, podAlert, testLog } from "./stack.js";

describe("retry policy", () => {
  const policy = { maxAttempts: 3, initialBackoffMs: 100, maxBackoffMs: 5_000 };

  it("doubles from 100 ms and caps at 5 s", () => {
    expect([1, 2, 3, 7, 20].map((n) => backoffDelay(policy, n))).toEqual([100, 200, 400, 5_000, 5_000]);
  });

  it("retries only retryable errors, at most maxAttempts times", async () => {
    const fast = { ...policy, initialBackoffMs: 1 };
    let calls = 0;
    await expect(
      withRetry(
        fast,
        async () => {
          calls++;
          throw new Error("503");
        },
        () => true,
      ),
    ).rejects.toThrow("503");
    expect(calls).toBe(3);
    calls = 0;
    await expect(
      withRetry(
        fast,
        async () => {
          calls++;
          throw new Error("422");
        },
        () => false,
      ),
    ).rejects.toThrow("422");
    expect(calls).toBe(1);
    calls = 0;
    expect(
      await withRetry(
        fast,
        async (n) => {
          calls++;
          if (n < 3) throw new Error("x");
          return "ok";
        },
        () => true,
      ),
    ).toBe("ok");
    expect(calls).toBe(3);
  });
});

describe("RemediationRequest object", () => {
  it("makes label values valid: allowed characters, at most 63, alphanumeric at both ends", () => {
    expect(labelValue("payments/api v2")).toBe("payments-api-v2");
    expect(labelValue("-x-")).toBe("x");
    expect(labelValue("a".repeat(80))).toHaveLength(63);
    expect(labelValue(`${"a".repeat(62)}.b`)).toBe("a".repeat(62));
    expect(labelValue("")).toBe("");
  });

  it("names requests rr-<12 hex>-<suffix>, the same for the same fingerprint and generation", () => {
    const fp = "ab".repeat(32);
    expect(remediationRequestName(fp, 0)).toMatch(/^rr-abababababab-[a-f0-9]{8}$/);
    expect(remediationRequestName(fp, 0)).toBe(remediationRequestName(fp, 0));
    expect(remediationRequestName(fp, 1)).not.toBe(remediationRequestName(fp, 0));
  });

  it("bounds labels, annotations and payload, and records the origin of fallback placements", () => {
    const signal = podAlert({ namespace: "ghost" });
    signal.labels = Object.fromEntries(Array.from({ length: 300 }, (_, i) => [`l${i}`, "v".repeat(5_000)]));
    signal.rawPayload = { blob: "x".repeat(900_000) };
    const rr = buildRemediationRequest(
      { signal, environment: "unknown", priority: "P2" },
      { namespace: "fb", originNamespace: "ghost" },
      "rr-x",
    );
    expect(Object.keys(rr.spec.signalLabels)).toHaveLength(256);
    expect(rr.spec.signalLabels.l0).toHaveLength(4096);
    expect(rr.spec).not.toHaveProperty("originalPayload");
    expect(rr.metadata.annotations["kubernaut.ai/payload-omitted"]).toBe("too-large");
    expect(rr.metadata.labels["kubernaut.ai/origin-namespace"]).toBe("ghost");
    const node = buildRemediationRequest(
      { signal: nodeAlert("n1"), environment: "unknown", priority: "P2" },
      { namespace: "fb", originNamespace: "" },
      "rr-y",
    );
    expect(node.metadata.labels["kubernaut.ai/origin-namespace"]).toBe("cluster-scoped");
    expect(node.spec.targetResource).toEqual({ kind: "Node", name: "n1" });
  });

  it("writes storm fields with a Go-style window duration", () => {
    const storm = {
      stormWindowMs: 60_000,
      stormAlertCount: 12,
      affectedResources: [{ kind: "Pod", name: "a", namespace: "x" }],
    };
    const rr = buildRemediationRequest(
      { signal: podAlert(), environment: "unknown", priority: "P2", storm },
      { namespace: "x" },
      "rr-z",
    );
    expect(rr.spec).toMatchObject({ isStorm: true, stormType: "rate", stormWindow: "60s", stormAlertCount: 12 });
    expect(durationText(1_500)).toBe("1500ms");
  });

  it("reads only namespace/name refs", () => {
    expect(parseRef("ns-1/rr-abc")).toEqual({ namespace: "ns-1", name: "rr-abc" });
    expect(parseRef("storm:abc-1")).toBeUndefined();
    expect(parseRef("")).toBeUndefined();
  });
});

describe("audit journal (real files)", () => {
  const event = (n: number): AuditEvent => ({
    version: "1.0",
    event_type: "gateway.signal.received",
    event_timestamp: new Date().toISOString(),
    event_category: "gateway",
    event_action: "received",
    event_outcome: "success",
    correlation_id: `c${n}`,
    event_data: { n, pad: "p".repeat(2_000) },
  });
  const ids = (events: AuditEvent[]) => events.map((e) => e.event_data.n);

  it("replays in order across segments, remembers delivery across a restart, and puts a prepended batch first", () => {
    const dir = mkdtempSync(join(tmpdir(), "gw-journal-test-"));
    const journal = new AuditJournal(dir);
    journal.open();
    expect(
      journal.append(
        Array.from({ length: 1_200 }, (_, i) => event(i)),
        64 << 20,
      ),
    ).toBe(1_200);
    expect(readdirSync(dir).filter((f) => f.endsWith(".jsonl")).length).toBeGreaterThan(1); // > 1 MiB: two segments
    expect(ids(journal.peek(3))).toEqual([0, 1, 2]);
    journal.ack(3);

    const reopened = new AuditJournal(dir);
    reopened.open();
    expect(ids(reopened.peek(2))).toEqual([3, 4]);
    reopened.prepend([event(-1)]);
    expect(ids(reopened.peek(2))).toEqual([-1]);
    reopened.ack(1);
    const rest: number[] = [];
    while (!reopened.isEmpty()) {
      const batch = reopened.peek(500);
      rest.push(...(ids(batch) as number[]));
      reopened.ack(batch.length);
    }
    expect(rest).toEqual(Array.from({ length: 1_197 }, (_, i) => i + 3));
    expect(reopened.bytes()).toBe(0);
  });

  it("writes only what fits under the byte limit", () => {
    const journal = new AuditJournal(mkdtempSync(join(tmpdir(), "gw-journal-test-")));
    journal.open();
    expect(
      journal.append(
        Array.from({ length: 10 }, (_, i) => event(i)),
        5_000,
      ),
    ).toBe(2);
    expect(journal.bytes()).toBeLessThanOrEqual(5_000);
  });

  // Root only (a real tmpfs), like the chaos experiment that found the crash this guards against.
  it("on a full disk says exactly how many events it kept, and delivery goes on", async () => {
    const disk = await Tmpfs.mount({ sizeBytes: 64 * 1024 });
    try {
      const journal = new AuditJournal(disk.path);
      journal.open();
      let kept = 0;
      try {
        journal.append(
          Array.from({ length: 100 }, (_, i) => event(i)),
          1 << 20,
        );
        expect.unreachable("a 64 KiB disk cannot take 200 KB of events");
      } catch (err) {
        expect(err).toBeInstanceOf(JournalWriteError);
        kept = (err as JournalWriteError).written;
      }
      expect(kept).toBeGreaterThan(0);
      expect(kept).toBeLessThan(100);
      // Every event it kept can be read back, no more; the cursor may not fit on the full disk.
      const replayed: number[] = [];
      while (!journal.isEmpty()) {
        const batch = journal.peek(7);
        replayed.push(...(ids(batch) as number[]));
        try {
          journal.ack(batch.length);
        } catch (err) {
          expect((err as NodeJS.ErrnoException).code).toBe("ENOSPC");
        }
      }
      expect(replayed).toEqual(Array.from({ length: kept }, (_, i) => i));
    } finally {
      await disk.unmount();
    }
  });
});

describe("storm windows in memory (Redis unreachable)", () => {
  const check = (store: MemoryStormStore, fp: string, nowMs: number, scope = "s") =>
    store.check({
      scope,
      fingerprint: fp,
      resource: { kind: "Pod", name: fp },
      template: { signal: podAlert(), environment: "unknown", priority: "P2" },
      nowMs,
      detectionWindowMs: 60_000,
      rateThreshold: 2,
      aggregationWindowMs: 1_000,
      keepMs: 10_000,
      ttlMs: 300_000,
    } satisfies StormCheck);

  it("opens a window over the threshold, folds later signals in, and hands it to one closer when due", async () => {
    const store = new MemoryStormStore();
    expect(await check(store, "a", 0)).toBeNull();
    expect(await check(store, "b", 1)).toBeNull();
    expect(await check(store, "b", 2, "other-scope")).toBeNull();
    const opened = await check(store, "c", 3);
    expect(opened?.opened).toBe(true);
    expect(await check(store, "d", 4)).toEqual({ windowId: opened?.windowId, opened: false });
    expect(await store.claimDue(500, 60_000)).toEqual([]);
    const [due, ...more] = await store.claimDue(1_003, 60_000);
    expect(more).toEqual([]);
    expect(due?.occurrences.occurrenceCount).toBe(2);
    expect(due?.resources.map((r) => r.name)).toEqual(["c", "d"]);
    expect(await store.claimDue(2_000, 60_000)).toEqual([]); // leased to the first closer
  });

  it("forgets fingerprints that left the detection window", async () => {
    const store = new MemoryStormStore();
    await check(store, "a", 0);
    await check(store, "b", 1);
    expect(await check(store, "c", 70_000)).toBeNull();
  });
});

describe("Kubernetes client retries (stub API server, unit of kube.ts)", () => {
  let server: Server;
  let answers: number[] = [];
  let calls = 0;
  let client: KubeClient;

  beforeAll(async () => {
    server = createServer((_req, res) => {
      calls++;
      const status = answers.shift() ?? 200;
      if (status === 0) return; // never answer: a timeout
      res.writeHead(status, { "content-type": "application/json" });
      res.end(JSON.stringify(status < 300 ? { ok: true } : { kind: "Status", message: `stub says ${status}` }));
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [
        { name: "stub", server: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, skipTLSVerify: true },
      ],
      users: [{ name: "u", token: "t" }],
      contexts: [{ name: "ctx", cluster: "stub", user: "u" }],
      currentContext: "ctx",
    });
    const base = defaultConfig();
    const cfg = {
      ...base,
      kubernetes: { ...base.kubernetes, requestTimeoutMs: 200 },
      processing: { ...base.processing, retry: { maxAttempts: 3, initialBackoffMs: 10, maxBackoffMs: 50 } },
    };
    client = new KubeClient(kc, { config: () => cfg, log: testLog });
  });

  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    await client.close();
  });

  const attempt = async (statuses: number[]) => {
    answers = [...statuses];
    calls = 0;
    const result = await client.call("test call", "GET", "/x").catch((err: unknown) => err);
    return { result, calls };
  };

  it("retries 429, 5xx and timeouts up to 3 attempts", async () => {
    expect(await attempt([503, 429, 200])).toEqual({ result: { ok: true }, calls: 3 });
    const { result, calls: n } = await attempt([500, 502, 504]);
    expect(n).toBe(3);
    expect(result).toMatchObject({ reason: "unavailable", status: 504 });
    const timedOut = await attempt([0, 0, 0]);
    expect(timedOut.calls).toBe(3);
    expect(timedOut.result).toBeInstanceOf(KubeApiError);
    expect(timedOut.result).toMatchObject({ reason: "timeout" });
  });

  it("does not retry 400, 403, 409 or 422", async () => {
    for (const [status, reason] of [
      [400, "invalid"],
      [403, "forbidden"],
      [409, "conflict"],
      [422, "invalid"],
    ] as const) {
      const { result, calls: n } = await attempt([status, 200]);
      expect(n).toBe(1);
      expect(result).toMatchObject({ reason, status });
      expect((result as Error).message).toContain(`stub says ${status}`);
    }
  });
});
