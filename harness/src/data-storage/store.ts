import { randomUUID } from "node:crypto";
import type pg from "pg";
import type { AuditEvent, StoredEvent } from "./events.js";

/** Filters of the query endpoint. */
export interface EventQuery {
  correlation_id?: string;
  event_type?: string;
  limit?: number;
}

export interface EventStats {
  total: number;
  by_type: Record<string, number>;
}

// `id` (serial) is the arrival order the suites check; event_id is what callers get back.
const SCHEMA = `
CREATE TABLE IF NOT EXISTS audit_events (
  id              serial PRIMARY KEY,
  event_id        uuid NOT NULL UNIQUE,
  version         text NOT NULL,
  event_type      text NOT NULL,
  event_timestamp timestamptz NOT NULL,
  event_category  text NOT NULL,
  event_action    text NOT NULL,
  event_outcome   text NOT NULL,
  correlation_id  text NOT NULL,
  event_data      jsonb NOT NULL,
  actor_type      text,
  actor_id        text,
  resource_type   text,
  resource_id     text,
  namespace       text,
  severity        text,
  duration_ms     double precision,
  received_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS audit_events_correlation ON audit_events (correlation_id, id);
CREATE INDEX IF NOT EXISTS audit_events_type ON audit_events (event_type, id);
`;

// The whole batch goes in as one JSON parameter: one statement, one round trip,
// rows numbered in array order (ORDER BY ordinality feeds the serial in that order).
const INSERT_BATCH = `
INSERT INTO audit_events (event_id, version, event_type, event_timestamp, event_category, event_action,
  event_outcome, correlation_id, event_data, actor_type, actor_id, resource_type, resource_id, namespace,
  severity, duration_ms)
SELECT r.event_id, r.version, r.event_type, r.event_timestamp, r.event_category, r.event_action,
  r.event_outcome, r.correlation_id, r.event_data, r.actor_type, r.actor_id, r.resource_type, r.resource_id,
  r.namespace, r.severity, r.duration_ms
FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS e(doc, n)
CROSS JOIN LATERAL jsonb_to_record(e.doc) AS r(event_id uuid, version text, event_type text,
  event_timestamp timestamptz, event_category text, event_action text, event_outcome text, correlation_id text,
  event_data jsonb, actor_type text, actor_id text, resource_type text, resource_id text, namespace text,
  severity text, duration_ms double precision)
ORDER BY e.n
`;

/** Optional columns that are NULL are left out, as the caller left them out. */
function withoutNulls<T extends object>(row: T): T {
  return Object.fromEntries(Object.entries(row).filter(([, v]) => v !== null)) as T;
}

/** Audit events in PostgreSQL. */
export class EventStore {
  constructor(private readonly pool: pg.Pool) {}

  async migrate(): Promise<void> {
    await this.pool.query(SCHEMA);
  }

  /** Stores the events in order; returns their new event ids in the same order. */
  async insert(events: AuditEvent[]): Promise<string[]> {
    const rows = events.map((e) => ({ ...e, event_id: randomUUID() }));
    await this.pool.query(INSERT_BATCH, [JSON.stringify(rows)]);
    return rows.map((r) => r.event_id);
  }

  /** Events in arrival order. */
  async find(query: EventQuery): Promise<StoredEvent[]> {
    const where: string[] = [];
    const params: unknown[] = [];
    for (const column of ["correlation_id", "event_type"] as const) {
      const value = query[column];
      if (value !== undefined) {
        params.push(value);
        where.push(`${column} = $${params.length}`);
      }
    }
    params.push(query.limit ?? 1000);
    const { rows } = await this.pool.query<StoredEvent>(
      `SELECT * FROM audit_events ${where.length ? `WHERE ${where.join(" AND ")}` : ""} ORDER BY id LIMIT $${params.length}`,
      params,
    );
    return rows.map(withoutNulls);
  }

  async stats(): Promise<EventStats> {
    const { rows } = await this.pool.query<{ event_type: string; n: number }>(
      "SELECT event_type, count(*)::int AS n FROM audit_events GROUP BY event_type ORDER BY event_type",
    );
    return {
      total: rows.reduce((sum, r) => sum + r.n, 0),
      by_type: Object.fromEntries(rows.map((r) => [r.event_type, r.n])),
    };
  }
}
