// Scenario 4's body, shared by the scenario and its can-fail run (e2e/test/can-fail.test.ts).
import { expect, type StackSpec, type Steps } from "../dsl.js";

export async function dedupAcrossRestarts({ given, when, then }: Steps, stack: StackSpec = {}): Promise<void> {
  const world = await given.stack({ namespaces: { search: { environment: "staging" } }, ...stack });
  const alert = { alert: "SearchIndexLagging", namespace: "search", pod: "indexer-0" };
  const first = await when.webhooksSent([alert, alert], "the alert is posted twice");
  await when.gatewayRestarts("SIGTERM");
  const afterTerm = await when.webhooksSent([alert], "the alert is posted again after the graceful restart");
  await when.gatewayRestarts("SIGKILL");
  const afterKill = await when.webhooksSent([alert, alert], "the alert is posted twice after the SIGKILL");
  const signal = first.signals[0] as (typeof first.signals)[0];
  await then.holds(
    "one RemediationRequest for the alert, counting 5 occurrences (status and Redis)",
    async () => {
      const rrs = await world.requestsOf(signal);
      expect(rrs.map((r) => r.metadata.name)).toEqual([first.answers[0]?.body.remediationRequestName]);
      expect(rrs[0]?.status?.deduplication?.occurrenceCount).toBe(5);
      expect((await world.dedupHash(signal)).count).toBe("5");
    },
    15_000,
  );
  await then.holds(
    "every answer after the first was 202 duplicate",
    async () => {
      const answers = [...first.answers, ...afterTerm.answers, ...afterKill.answers].map(
        (a) => `${a.status} ${a.body.status}`,
      );
      expect(answers).toEqual(["201 created", ...Array(4).fill("202 duplicate")]);
    },
    0,
  );
}
