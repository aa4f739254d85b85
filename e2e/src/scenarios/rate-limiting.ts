// Scenario 10's body, shared by the scenario and its can-fail run.
import { type ClientAnswer, expect, type StackSpec, type Steps } from "../dsl.js";

const LIMIT = 20;

function p95(answers: ClientAnswer[]): number {
  const ms = answers.map((a) => a.ms).sort((a, b) => a - b);
  return ms[Math.min(ms.length - 1, Math.floor(ms.length * 0.95))] ?? 0;
}

export async function rateLimiting({ given, when, then }: Steps, stack: StackSpec = {}): Promise<void> {
  await given.stack({
    gateway: { rateLimit: { enabled: true, requestsPerSecond: LIMIT, burst: LIMIT, trustForwardedFor: true } },
    ...stack,
  });
  const baseline = await when.clientSends({
    forwardedFor: "10.0.0.2",
    rate: 10,
    count: 30,
    text: "client B sends 10 alerts/s alone (its baseline)",
  });
  const [noisy, beside] = await Promise.all([
    when.clientSends({
      forwardedFor: "10.0.0.1",
      rate: 3 * LIMIT,
      count: 6 * LIMIT,
      text: `client A sends at 3× its limit of ${LIMIT}/s for 2 s`,
    }),
    when.clientSends({
      forwardedFor: "10.0.0.2",
      rate: 10,
      count: 20,
      text: "client B sends 10 alerts/s at the same time",
    }),
  ]);
  await then.holds(
    "client A's excess is refused with 429 and a Retry-After, nothing else",
    async () => {
      const refused = noisy.filter((a) => a.status === 429);
      expect(refused.length).toBeGreaterThan(noisy.length / 3);
      expect(refused.every((a) => Number(a.retryAfter) >= 1)).toBe(true);
      expect(noisy.filter((a) => a.status !== 429 && (a.status < 200 || a.status >= 300))).toEqual([]);
    },
    0,
  );
  await then.holds(
    "client B sees no error at all, before or beside A",
    async () => {
      expect([...baseline, ...beside].filter((a) => a.status < 200 || a.status >= 300).map((a) => a.status)).toEqual(
        [],
      );
    },
    0,
  );
  await then.holds(
    "client B's latency beside A is within 50 ms of its baseline (p95)",
    async () => {
      const seen = { besideP95Ms: Math.round(p95(beside)), baselineP95Ms: Math.round(p95(baseline)) };
      expect(seen.besideP95Ms, JSON.stringify(seen)).toBeLessThanOrEqual(seen.baselineP95Ms + 50);
      return seen;
    },
    0,
  );
}
