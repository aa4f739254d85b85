// Scenario 3: the full stack (gateway, Redis, API server, Data Storage on
// PostgreSQL): the audit trail of a signal is complete and in order, row by row
// as Data Storage stored them, and matches the count in the request's status.
import { expect, scenario } from "../src/dsl.js";

scenario("3. the audit trail of a signal is complete and ordered in Data Storage", async ({ given, when, then }) => {
  const world = await given.stack({ namespaces: { orders: { environment: "production" } } });
  const alert = { alert: "OrdersQueueBacklog", namespace: "orders", pod: "orders-worker-1" };
  const { signals, answers } = await when.webhooksSent(Array(5).fill(alert), "the same alert is posted 5 times");
  expect(answers.map((a) => a.status)).toEqual([201, 202, 202, 202, 202]);
  const signal = signals[0] as (typeof signals)[0];
  const expected = [
    "gateway.signal.received",
    "gateway.crd.created",
    ...Array(4).fill(["gateway.signal.received", "gateway.signal.deduplicated"]).flat(),
  ];
  await then.holds(
    `Data Storage holds ${expected.length} rows for the fingerprint, in this order: ${expected.join(", ")}`,
    async () => {
      const rows = await world.auditTrail(signal);
      expect(rows.map((r) => r.event_type)).toEqual(expected);
      const times = rows.map((r) => Date.parse(r.event_timestamp));
      expect(times).toEqual([...times].sort((a, b) => a - b));
      const name = answers[0]?.body.remediationRequestName;
      expect(rows.find((r) => r.event_type === "gateway.crd.created")).toMatchObject({
        resource_type: "RemediationRequest",
        resource_id: `orders/${name}`,
      });
      for (const row of rows.filter((r) => r.event_type === "gateway.signal.deduplicated"))
        expect(row.resource_id).toBe(`orders/${name}`);
    },
  );
  await then.holds("the request's status and the Redis hash both count 5 occurrences", async () => {
    const [rr] = await world.requestsOf(signal);
    expect(rr?.status?.deduplication?.occurrenceCount).toBe(5);
    expect((await world.dedupHash(signal)).count).toBe("5");
  });
});
