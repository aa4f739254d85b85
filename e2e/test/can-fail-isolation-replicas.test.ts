// Scenarios 9 and 11 fail against a gateway with the protection they guard removed
// (a patched copy; the shipped gateway has no switch), and name what they saw.
import { describe, expect } from "vitest";
import { patchedGateway } from "../../harness/src/components/patched-gateway.js";
import { scenario } from "../src/dsl.js";
import { namespaceIsolation } from "../src/scenarios/namespace-isolation.js";
import { replicasDedupWindow } from "../src/scenarios/replicas-dedup-window.js";

describe("the isolation and replica scenarios can fail", () => {
  scenario("9 fails when the gateway ignores its namespace policy", async ({ given, when, then }) => {
    const gatewayMain = patchedGateway("no-namespace-policy", [
      {
        file: "routes/signals.ts",
        find: "!namespaceAllowed(signal.namespace, cfg.namespaces)",
        replace: "false",
      },
    ]);
    // Both refused namespaces get a request of their own.
    await expect(namespaceIsolation({ given, when, then }, { gatewayMain })).rejects.toThrow(
      /refused with 403 forbidden[\s\S]*last saw: ledger-archive: 201 created, requests there: ledger-archive\/rr-\S+ \(PaymentsLatencyHigh\); sandbox: 201 created, requests there: sandbox\/rr-/,
    );
  });

  scenario("11 fails when the check-and-claim is not exclusive across processes", async ({ given, when, then }) => {
    // Both places where one process's claim excludes another's: the Lua claim (a second claimer
    // now takes over a claim still held, instead of waiting for it) and the API server's name
    // collision (names now differ per process, as a random "unique suffix" would, so the second
    // create is no longer a 409 to adopt). With the Lua patch alone the scenario passes: the
    // name collision still makes one request. One process shows neither: its sightings of a
    // fingerprint wait on its own creation, and its names still collide.
    const gatewayMain = patchedGateway("claim-not-exclusive", [
      { file: "dedup-scripts.ts", find: "if claim ~= '' and claimedAt + lease > nowMs then", replace: "if false then" },
      {
        file: "remediation-request.ts",
        find: "update(`${fingerprint}:${generation}`)",
        replace: "update(`${fingerprint}:${generation}:${process.pid}`)",
      },
    ]);
    await expect(replicasDedupWindow({ given, when, then }, { gatewayMain })).rejects.toThrow(
      /exactly one RemediationRequest per fingerprint[\s\S]*last saw: \d+ of 21 fingerprints: 2 requests for fingerprint [0-9a-f]{64} \(CheckoutErrorBudgetBurn \(cart-\w+\)\): rr-/,
    );
  });
});
