// Scenario 2: a Warning Event created in the API server → event exporter →
// gateway → RemediationRequest → AI Analysis asks for a person →
// requiresManualReview: true, outcome ManualReviewRequired, no workflow run.
import { expect, scenario } from "../src/dsl.js";

scenario("2. a Kubernetes Warning event ends in manual review", async ({ given, when, then }) => {
  const world = await given.stack({
    namespaces: { payments: { environment: "staging" } },
    eventExporter: true,
    // The documented way to choose a behaviour: a rule in the ConfigMap standin-behaviour.
    aiAnalysis: [{ signalName: "FailedMount", behaviour: "review" }],
  });
  const event = await when.warningEvent({ namespace: "payments", reason: "FailedMount", pod: "ledger-0" });
  const rr = await then.remediationRequest(event).reaches("Completed");
  expect(rr.spec).toMatchObject({ signalName: "FailedMount", signalType: "kubernetes-event", severity: "critical" });
  expect(rr.status).toMatchObject({ requiresManualReview: true, outcome: "ManualReviewRequired" });
  expect(rr.status?.workflowExecutionRef).toBeUndefined();
  const analysis = await world.child("aianalyses", rr.metadata.namespace, `${rr.metadata.name}-analysis`);
  expect(analysis.status).toMatchObject({ phase: "Completed", requiresManualReview: true });
});
