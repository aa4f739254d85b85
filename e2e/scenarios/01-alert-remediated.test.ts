// Scenario 1: a real Prometheus rule → real Alertmanager → gateway →
// RemediationRequest → orchestrator → Completed, outcome Remediated, both
// children Completed and owned by the request; the signal's audit trail complete.
import { expect, scenario } from "../src/dsl.js";

scenario("1. a Prometheus alert is remediated: Completed, outcome Remediated", async ({ given, when, then }) => {
  const world = await given.stack({ namespaces: { shop: { environment: "production" } } });
  const alert = await when.alertFires({
    alert: "CheckoutPodCrashLooping",
    namespace: "shop",
    pod: "checkout-7d9f-x2k4p",
  });
  const rr = await then.remediationRequest(alert).reaches("Completed");
  expect(rr.spec).toMatchObject({
    signalName: "CheckoutPodCrashLooping",
    priority: "P0",
    signalType: "prometheus-alert",
  });
  expect(rr.status).toMatchObject({ outcome: "Remediated", requiresManualReview: false });
  await then.holds("both children Completed, each owned by the request", async () => {
    for (const [plural, ref] of [
      ["aianalyses", rr.status?.aiAnalysisRef],
      ["workflowexecutions", rr.status?.workflowExecutionRef],
    ] as const) {
      const child = await world.child(plural, rr.metadata.namespace, (ref as { name: string }).name);
      expect(child.status?.phase, plural).toBe("Completed");
      expect(child.metadata.ownerReferences, plural).toEqual([
        expect.objectContaining({
          kind: "RemediationRequest",
          name: rr.metadata.name,
          uid: rr.metadata.uid,
          controller: true,
        }),
      ]);
    }
  });
  expect(world.phases.of(rr)).toEqual(expect.arrayContaining(["Processing", "Analyzing", "Executing", "Completed"]));
  await then.holds("the audit trail has the signal received, then its request created", async () => {
    const types = (await world.auditTrail(alert)).map((e) => e.event_type);
    expect(types[0]).toBe("gateway.signal.received");
    expect(types).toContain("gateway.crd.created");
    expect(types.indexOf("gateway.crd.created")).toBeGreaterThan(0);
  });
});
