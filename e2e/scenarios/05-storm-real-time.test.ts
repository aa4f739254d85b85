// Scenario 5: real-time progression. A storm window opens and closes on the
// clock (a 4 s aggregation window), yielding one aggregated request with
// isStorm, stormAlertCount and affectedResources; a watch sees its phases in order.
import { expect, scenario } from "../src/dsl.js";

const WINDOW_MS = 4_000;

scenario(
  "5. a storm window opens and closes in real time; its request progresses through the phases",
  async ({ given, when, then }) => {
    const world = await given.stack({
      namespaces: { ingest: { environment: "production" } },
      gateway: {
        processing: { storm: { rateThreshold: 5, detectionWindow: "30s", aggregationWindow: `${WINDOW_MS / 1000}s` } },
      },
    });
    const pods = Array.from({ length: 12 }, (_, i) => `ingest-worker-${i}`);
    const { answers } = await when.webhooksSent(
      pods.map((pod) => ({ alert: "IngestLagHigh", namespace: "ingest", pod })),
      "12 alerts of one name in one namespace arrive within a second",
    );
    const sentAt = Date.now();
    const folded = answers.filter((a) => a.body.status === "storm-aggregated").length;
    const individual = answers.filter((a) => a.status === 201).length;
    expect(folded, "answers storm-aggregated").toBeGreaterThan(0);
    expect(individual + folded).toBe(pods.length);
    const storms = async () => (await world.remediationRequests()).filter((rr) => rr.spec.isStorm === true);
    expect(await storms(), "no storm request before the window closes").toEqual([]);
    const storm = await then.holds(
      `one storm request appears once the ${WINDOW_MS} ms window closed, counting the ${folded} folded alerts`,
      async () => {
        const found = await storms();
        expect(found).toHaveLength(1);
        return found[0] as (typeof found)[0];
      },
      30_000,
    );
    expect(Date.now() - sentAt, "the window was held open for its length").toBeGreaterThanOrEqual(WINDOW_MS - 1_000);
    expect(storm.spec).toMatchObject({ isStorm: true, stormAlertCount: folded, signalName: "IngestLagHigh" });
    const affected = (storm.spec.affectedResources as { name: string }[]).map((r) => r.name).sort();
    expect(affected).toEqual(pods.slice(individual).sort());
    const stormSignal = {
      fingerprint: storm.spec.signalFingerprint,
      signalName: "IngestLagHigh (storm)",
      namespace: "ingest",
    };
    const done = await then.remediationRequest(stormSignal).reaches("Completed");
    expect(done.status?.outcome).toBe("Remediated");
    await then.holds(
      "a watch saw the storm request's phases in order",
      async () => {
        const seen = world.phases.of(done).filter((p) => p !== "(none)" && p !== "Pending");
        expect(seen).toEqual(["Processing", "Analyzing", "Executing", "Completed"]);
      },
      0,
    );
  },
);
