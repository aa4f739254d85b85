import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DataStorageService, type StartedDataStorageService } from "../src/components/data-storage.js";
import { PostgresServer, type StartedPostgresServer } from "../src/components/postgres.js";
import { eventually } from "../src/poll.js";

function event(correlationId: string, type: string, data: Record<string, unknown> = {}) {
  return {
    version: "1.0",
    event_type: type,
    event_timestamp: new Date().toISOString(),
    event_category: "gateway",
    event_action: type.split(".").pop(),
    event_outcome: "success",
    correlation_id: correlationId,
    event_data: data,
    namespace: "prod",
  };
}

describe("Data Storage stand-in (own process, real PostgreSQL)", () => {
  let postgres: StartedPostgresServer;
  let ds: StartedDataStorageService;
  const post = (events: unknown, path = "/api/v1/audit/events/batch") =>
    fetch(`${ds.getUrl()}${path}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(events),
    });
  const rowsOf = async (correlationId: string) => {
    const client = await postgres.client();
    try {
      const { rows } = await client.query<{ event_type: string; event_data: unknown }>(
        "SELECT event_type, event_data FROM audit_events WHERE correlation_id = $1 ORDER BY id",
        [correlationId],
      );
      return rows;
    } finally {
      await client.end();
    }
  };

  beforeAll(async () => {
    postgres = await new PostgresServer().withDatabase("audit").withUser("gw", "pw").start();
    ds = await new DataStorageService().withPostgres(postgres).start();
  });
  afterAll(async () => {
    await ds?.stop();
    await postgres?.stop();
  });

  it("stores a batch in PostgreSQL and returns it in arrival order", async () => {
    const cid = randomUUID();
    const types = ["gateway.signal.received", "gateway.crd.created", "gateway.signal.deduplicated"];
    const res = await post(types.map((t, i) => event(cid, t, { seq: i, nested: { ok: true } })));
    expect(res.status).toBe(201);
    const { event_ids } = (await res.json()) as { event_ids: string[] };
    expect(event_ids).toHaveLength(3);

    const stored = await ds.events({ correlation_id: cid });
    expect(stored.map((e) => e.event_type)).toEqual(types);
    expect(stored.map((e) => e.event_id)).toEqual(event_ids);
    expect(stored[2]?.event_data).toEqual({ seq: 2, nested: { ok: true } });
    expect(stored[0]?.namespace).toBe("prod");
    expect(stored[0]).not.toHaveProperty("actor_id"); // absent stays absent

    expect(await rowsOf(cid)).toEqual(
      types.map((t, i) => ({ event_type: t, event_data: { seq: i, nested: { ok: true } } })),
    );
    expect((await ds.events({ correlation_id: cid, event_type: "gateway.crd.created" })).length).toBe(1);
    expect((await ds.stats()).by_type["gateway.crd.created"]).toBeGreaterThanOrEqual(1);
  });

  it("accepts a single event", async () => {
    const cid = randomUUID();
    const res = await post(event(cid, "gateway.signal.received"), "/api/v1/audit/events");
    expect(res.status).toBe(201);
    expect(await rowsOf(cid)).toHaveLength(1);
  });

  it("refuses a batch with a bad event with 400 naming the field, storing none of it", async () => {
    const cid = randomUUID();
    const { correlation_id: _, ...missing } = event(cid, "gateway.crd.created");
    const res = await post([event(cid, "gateway.signal.received"), missing]);
    expect(res.status).toBe(400);
    expect(res.headers.get("content-type")).toMatch(/application\/problem\+json/);
    const body = (await res.json()) as { type: string; detail: string; field: string };
    expect(body.type).toBe("https://kubernaut.ai/problems/validation-error");
    expect(body.field).toBe("event[1].correlation_id");
    expect(body.detail).toContain("event[1].correlation_id is required");
    expect(await rowsOf(cid)).toEqual([]);

    const bad = await post([{ ...event(cid, "x"), event_outcome: "maybe" }]);
    expect(((await bad.json()) as { detail: string }).detail).toMatch(/event\[0\]\.event_outcome must be one of/);
    const badLimit = await fetch(`${ds.getUrl()}/api/v1/audit/events?limit=lots`);
    expect(badLimit.status).toBe(400);
  });

  it("fails audit writes with 503 in fail mode and recovers", async () => {
    const cid = randomUUID();
    await ds.setFault("fail");
    try {
      const res = await post([event(cid, "gateway.signal.received")]);
      expect(res.status).toBe(503);
      expect(res.headers.get("retry-after")).toBe("1");
      expect(await rowsOf(cid)).toEqual([]);
    } finally {
      await ds.setFault("none");
    }
    expect((await post([event(cid, "gateway.signal.received")])).status).toBe(201);
  });

  it("holds writes unanswered in stall mode until the mode is back to none", async () => {
    const cid = randomUUID();
    await ds.setFault("stall");
    let settled = false;
    const pending = post([event(cid, "gateway.signal.received")]).finally(() => {
      settled = true;
    });
    try {
      await eventually(async () => (await ds.fault()).stalled === 1, { what: "the write to be held" });
      expect(settled).toBe(false);
      expect(await rowsOf(cid)).toEqual([]);
    } finally {
      await ds.setFault("none");
    }
    expect((await pending).status).toBe(201);
    expect(await rowsOf(cid)).toHaveLength(1);
  });

  it("keeps the events across a crash of the service", async () => {
    const cid = randomUUID();
    expect((await post([event(cid, "gateway.crd.created")])).status).toBe(201);
    await ds.kill();
    await ds.start();
    expect((await ds.events({ correlation_id: cid })).map((e) => e.event_type)).toEqual(["gateway.crd.created"]);
  });
});
