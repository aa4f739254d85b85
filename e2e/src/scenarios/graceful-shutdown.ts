// Scenario 6's body, shared by the scenario and its can-fail run.
import { expect, type StackSpec, type Steps } from "../dsl.js";

export async function gracefulShutdown({ given, when, then }: Steps, stack: StackSpec = {}): Promise<void> {
  // One load generator is one client: no per-client limit here.
  await given.stack({
    gateway: { shutdown: { gracePeriod: "2s" }, rateLimit: { enabled: false } },
    ...stack,
  });
  const load = await when.loadRuns(200);
  // A rollout comes in a steady state: past the warm-up (the first sighting of each of the
  // load's 200 fingerprints), three seconds of its regular traffic.
  await then.holds(
    "the load is past its warm-up",
    async () => {
      expect(load.answers.length).toBeGreaterThan(200 + 600);
      return { answers: load.answers.length };
    },
    30_000,
  );
  const { readiness, exit } = await when.gatewayTerminates();
  await then.holds(
    "every answer was a 2xx or a retryable refusal (503 with Retry-After, or the connection refused once the gateway was gone)",
    async () => {
      await load.stop();
      const bad = load.answers.filter(
        (a) =>
          !(a.status >= 200 && a.status < 300) &&
          !(a.status === 503 && a.retryAfter) &&
          !(a.status === 0 && /ECONNREFUSED|connect/i.test(a.reason ?? "")),
      );
      const kinds: Record<string, number> = {};
      for (const a of bad)
        kinds[`${a.status} ${a.reason ?? ""}`.trim()] = (kinds[`${a.status} ${a.reason ?? ""}`.trim()] ?? 0) + 1;
      if (bad.length > 0) throw new Error(`${bad.length} answers neither 2xx nor retryable: ${JSON.stringify(kinds)}`);
      return { answers: load.answers.length, refusedAfterExit: load.answers.filter((a) => a.status === 0).length };
    },
    0,
  );
  // The gateway's own counters end with its process, so its last scrape may miss the final second:
  // the accounting checks that nothing was lost (requests, counts, audit), not the counters.
  await then.everySignalAccountedFor(load, "no-loss");
  await then.holds(
    "readiness turned 503 while it still served, and the process exited 0",
    async () => {
      // A first 200 is a poll that beat the signal.
      expect(readiness.slice(readiness[0] === 200 ? 1 : 0)).toEqual([503, 0]);
      expect(exit).toMatchObject({ code: 0 });
      return { readiness, exit };
    },
    0,
  );
}
