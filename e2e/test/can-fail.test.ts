// Each scenario that guards a protection fails against a gateway with that
// protection removed (a patched copy; the shipped gateway has no switch), and
// names what it saw.
import { describe, expect } from "vitest";
import { patchedGateway } from "../../harness/src/components/patched-gateway.js";
import { scenario } from "../src/dsl.js";
import { dedupAcrossRestarts } from "../src/scenarios/dedup-across-restarts.js";
import { gracefulShutdown } from "../src/scenarios/graceful-shutdown.js";
import { rateLimiting } from "../src/scenarios/rate-limiting.js";

describe("the lifecycle scenarios can fail", () => {
  scenario("4 fails when the deduplication state lives only in the gateway process", async ({ given, when, then }) => {
    // Both places that outlive a process: the Redis hash (now keyed by this process) and the
    // adoption of the active request the API server already holds.
    const gatewayMain = patchedGateway("process-local-dedup", [
      {
        file: "dedup-scripts.ts",
        find: 'const DEDUP_PREFIX = "gateway:dedup:fingerprint:";',
        replace: "const DEDUP_PREFIX = `gateway:dedup:${process.pid}:fingerprint:`;",
      },
      { file: "kube.ts", find: "const active = oldestActive(existing);", replace: "const active = undefined;" },
    ]);
    // A request per process for one alert (three: before, after SIGTERM, after SIGKILL).
    await expect(dedupAcrossRestarts({ given, when, then }, { gatewayMain })).rejects.toThrow(
      /one RemediationRequest for the alert[\s\S]*last saw: expected \[ 'rr-[^']+', …\(2\) \] to deeply equal/,
    );
  });

  scenario("10 fails when every client shares one rate-limit bucket", async ({ given, when, then }) => {
    const gatewayMain = patchedGateway("one-bucket", [
      {
        file: "protection.ts",
        find: "limiter.take(clientKey(request, trustForwardedFor ?? false), requestsPerSecond, burst)",
        replace: 'limiter.take("everyone", requestsPerSecond, burst)',
      },
    ]);
    await expect(rateLimiting({ given, when, then }, { gatewayMain })).rejects.toThrow(
      /client B sees no error at all[\s\S]*last saw: expected \[ 429/,
    );
  });

  scenario("6 fails when SIGTERM ends the gateway at once", async ({ given, when, then }) => {
    const gatewayMain = patchedGateway("no-drain", [
      {
        file: "main.ts",
        find: 'process.on("SIGTERM", stop);',
        replace: 'process.on("SIGTERM", () => process.exit(0));',
      },
    ]);
    // Requests in flight lose their connection mid-answer, or the counts they were answered
    // for never reach their requests: either way something accepted is lost.
    await expect(gracefulShutdown({ given, when, then }, { gatewayMain })).rejects.toThrow(
      /answers neither 2xx nor retryable|D2: every 2xx is a counted occurrence/,
    );
  });
});
