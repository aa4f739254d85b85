import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import fc from "fast-check";
import type { LightMyRequestResponse } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseJsonBody } from "../../src/json-body.js";
import { ProblemError } from "../../src/types.js";
import { type TestApp, testApp, warningEvent, webhook } from "./helpers.js";

const ENDPOINTS = ["/api/v1/signals/prometheus", "/api/v1/signals/kubernetes-event"] as const;

/** A hostile request: body bytes plus an optional content type. */
interface Attack {
  label: string;
  body: Buffer;
  contentType?: string;
}

const json = (value: unknown) => Buffer.from(JSON.stringify(value));

const validBodies = [json(webhook({ alertname: "A", namespace: "ns", pod: "p" })), json(warningEvent())];

/** Deeply nested JSON text, built as text (JSON.stringify itself overflows the stack on it). */
function nested(depth: number): string {
  const open = Array.from({ length: depth }, (_, i) => (i % 2 ? "[" : '{"a":')).join("");
  const close = Array.from({ length: depth }, (_, i) => (i % 2 ? "]" : "}"))
    .reverse()
    .join("");
  return `${open}1${close}`;
}

/** Mutations of a valid payload that are always invalid for both endpoints. */
const attacks: fc.Arbitrary<Attack> = fc.oneof(
  fc.uint8Array({ maxLength: 2048 }).map((bytes) => ({ label: "random bytes", body: Buffer.from(bytes) })),
  fc.jsonValue({ maxDepth: 4 }).map((v) => ({ label: "arbitrary JSON", body: json(v) })),
  fc
    .tuple(fc.constantFrom(...validBodies), fc.nat())
    .map(([b, n]) => ({ label: "truncated", body: b.subarray(0, n % b.length) })),
  fc
    .tuple(fc.constantFrom(...validBodies), fc.nat(), fc.constantFrom(0xff, 0xfe, 0xc0, 0x80, 0xed))
    .map(([b, n, byte]) => {
      const at = n % b.length;
      return { label: "invalid UTF-8", body: Buffer.concat([b.subarray(0, at), Buffer.from([byte]), b.subarray(at)]) };
    }),
  fc.integer({ min: 33, max: 20_000 }).map((d) => ({
    label: "deep nesting",
    body: Buffer.from(`{"type":"Warning","alerts":[${nested(d)}],"metadata":${nested(d)}}`),
  })),
  fc.integer({ min: 101, max: 5000 }).map((n) => ({
    label: "huge label map",
    body: json({
      alerts: [{ labels: Object.fromEntries(Array.from({ length: n }, (_, i) => [`l${i}`, "v"])) }],
      type: "Warning",
      reason: "R",
      involvedObject: { kind: "Pod", name: "p" },
      metadata: { labels: Object.fromEntries(Array.from({ length: n }, (_, i) => [`l${i}`, "v"])) },
    }),
  })),
  fc
    .tuple(fc.oneof(fc.integer(), fc.boolean(), fc.constant(null), fc.array(fc.string()), fc.object()))
    .map(([wrong]) => ({
      label: "non-string label value",
      body: json({
        alerts: [{ labels: { alertname: "A", bad: wrong } }],
        type: "Warning",
        reason: "R",
        involvedObject: { kind: "Pod", name: "p" },
        metadata: { labels: { bad: wrong } },
      }),
    })),
  fc
    .tuple(
      fc.constantFrom(...validBodies),
      fc.constantFrom(
        "text/plain",
        "application/xml",
        "multipart/form-data",
        "application/json; charset=utf-16",
        "image/png",
      ),
    )
    .map(([body, contentType]) => ({ label: "wrong content type", body, contentType })),
  fc.constantFrom(
    {
      label: "huge string",
      body: json({
        alerts: [{ labels: { alertname: "x".repeat(100_000) } }],
        reason: "x".repeat(100_000),
        type: "Warning",
        involvedObject: { kind: "Pod", name: "p" },
      }),
    },
    { label: "proto pollution", body: Buffer.from('{"__proto__":{"polluted":true},"alerts":[],"type":"Normal"}') },
    { label: "empty", body: Buffer.alloc(0) },
    { label: "whitespace", body: Buffer.from("   \n ") },
    { label: "BOM only", body: Buffer.from([0xef, 0xbb, 0xbf]) },
  ),
);

let t: TestApp;
beforeAll(async () => {
  t = await testApp({ rateLimit: { enabled: false } });
});
afterAll(async () => {
  await t.app.close();
});

async function fire(url: string, attack: Attack): Promise<LightMyRequestResponse> {
  const headers: Record<string, string> = attack.contentType
    ? { "content-type": attack.contentType }
    : { "content-type": "application/json" };
  return t.app.inject({ method: "POST", url, payload: attack.body, headers });
}

function expectClientProblem(res: LightMyRequestResponse, attack: Attack) {
  const what = `${attack.label}: ${res.statusCode} ${res.body.slice(0, 300)}`;
  expect(res.statusCode, what).toBeGreaterThanOrEqual(400);
  expect(res.statusCode, what).toBeLessThan(500);
  expect(res.headers["content-type"], what).toMatch(/^application\/problem\+json/);
  const body = res.json();
  expect(typeof body.detail, what).toBe("string");
  expect(body.detail.length, what).toBeGreaterThan(0);
  expect(body.detail.length, what).toBeLessThan(400); // never the payload echoed back
  expect(body.status, what).toBe(res.statusCode);
}

describe("hostile payloads get a 4xx problem+json with a detail", () => {
  it.each(ENDPOINTS)("%s", async (url) => {
    await fc.assert(
      fc.asyncProperty(attacks, async (attack) => {
        expectClientProblem(await fire(url, attack), attack);
      }),
      { numRuns: 300 },
    );
    expect(t.pipeline.seen).toHaveLength(0);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it("parseJsonBody never throws anything but a 400 ProblemError", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 512 }), (bytes) => {
        try {
          parseJsonBody(Buffer.from(bytes));
        } catch (err) {
          expect(err).toBeInstanceOf(ProblemError);
          expect((err as ProblemError).status).toBe(400);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it("parseJsonBody agrees with JSON.parse on what is valid", () => {
    fc.assert(
      fc.property(fc.oneof(fc.json({ maxDepth: 6 }), fc.string()), (text) => {
        let native: unknown;
        let nativeOk = true;
        try {
          native = JSON.parse(text);
        } catch {
          nativeOk = false;
        }
        if (text.length === 0 || text.includes("__proto__")) return;
        if (nativeOk) expect(parseJsonBody(Buffer.from(text))).toEqual(native);
        else expect(() => parseJsonBody(Buffer.from(text))).toThrow(/not valid JSON/);
      }),
      { numRuns: 2000 },
    );
  });
});

describe("memory stays bounded", () => {
  it("does not grow across thousands of hostile requests", async () => {
    setFlagsFromString("--expose-gc");
    const gc = runInNewContext("gc") as () => void;
    const samples = fc.sample(attacks, { numRuns: 200, seed: 42 });
    const round = async () => {
      for (const attack of samples) for (const url of ENDPOINTS) await fire(url, attack);
    };
    await round(); // warm-up: JIT, schema compilation, caches
    gc();
    const before = process.memoryUsage().heapUsed;
    for (let i = 0; i < 5; i++) await round(); // 2000 requests
    gc();
    const growthMb = (process.memoryUsage().heapUsed - before) / 1024 / 1024;
    expect(growthMb).toBeLessThan(30);
  });
});
