/** Audit event as the gateway sends it (contract section 7). */
export interface AuditEvent {
  version: "1.0";
  event_type: string;
  event_timestamp: string;
  event_category: string;
  event_action: string;
  event_outcome: EventOutcome;
  correlation_id: string;
  event_data: Record<string, unknown>;
  actor_type?: string;
  actor_id?: string;
  resource_type?: string;
  resource_id?: string;
  namespace?: string;
  severity?: string;
  duration_ms?: number;
}

/** An event as stored: `id` gives the arrival order, timestamps come back as ISO strings. */
export interface StoredEvent extends AuditEvent {
  id: number;
  event_id: string;
  received_at: string;
}

export const EVENT_OUTCOMES = ["success", "failure", "pending"] as const;
export type EventOutcome = (typeof EVENT_OUTCOMES)[number];

const REQUIRED_TEXT = ["event_type", "event_category", "event_action", "correlation_id"] as const;
const OPTIONAL_TEXT = ["actor_type", "actor_id", "resource_type", "resource_id", "namespace", "severity"] as const;
const REQUIRED = ["version", ...REQUIRED_TEXT, "event_timestamp", "event_outcome", "event_data"] as const;
const KNOWN_FIELDS = new Set<string>([...REQUIRED, ...OPTIONAL_TEXT, "duration_ms"]);

// RFC 3339 with a mandatory offset: what PostgreSQL's timestamptz parses unambiguously.
const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;

/** A rejected event: `field` is the path of the offending field, `reason` says why. */
export class ValidationError extends Error {
  constructor(
    readonly field: string,
    readonly reason: string,
  ) {
    super(`${field} ${reason}`);
  }
}

function present(value: unknown): boolean {
  return value !== undefined && value !== null;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * Checks one event and returns it typed, or throws a ValidationError naming
 * the field. `path` prefixes field names (e.g. "event[3]" inside a batch).
 * Unknown fields are refused so a misspelt optional field is not lost silently.
 */
export function validateEvent(raw: unknown, path = ""): AuditEvent {
  const at = (field: string) => (path ? `${path}.${field}` : field);
  const fail = (field: string, reason: string) => new ValidationError(at(field), reason);
  if (!isObject(raw)) throw new ValidationError(path || "body", "must be a JSON object");
  for (const key of Object.keys(raw)) {
    if (!KNOWN_FIELDS.has(key)) throw fail(key, "is not a known audit event field");
  }
  for (const field of REQUIRED) {
    if (!present(raw[field])) throw fail(field, "is required");
  }
  if (raw.version !== "1.0") throw fail("version", `must be "1.0" (got: ${JSON.stringify(raw.version)})`);
  for (const field of REQUIRED_TEXT) {
    if (typeof raw[field] !== "string" || raw[field] === "") throw fail(field, "must be a non-empty string");
  }
  const ts = raw.event_timestamp;
  if (typeof ts !== "string" || !RFC3339.test(ts) || Number.isNaN(Date.parse(ts))) {
    throw fail("event_timestamp", "must be an RFC 3339 timestamp with offset, e.g. 2025-01-31T12:00:00Z");
  }
  if (!EVENT_OUTCOMES.includes(raw.event_outcome as EventOutcome)) {
    throw fail("event_outcome", `must be one of ${EVENT_OUTCOMES.join(", ")}`);
  }
  if (!isObject(raw.event_data)) throw fail("event_data", "must be a JSON object");
  for (const field of OPTIONAL_TEXT) {
    if (present(raw[field]) && typeof raw[field] !== "string") throw fail(field, "must be a string when present");
  }
  const duration = raw.duration_ms;
  if (present(duration) && !(typeof duration === "number" && Number.isFinite(duration) && duration >= 0)) {
    throw fail("duration_ms", "must be a non-negative number when present");
  }
  return raw as unknown as AuditEvent;
}

/** Checks a batch body: a non-empty JSON array of valid events. */
export function validateBatch(raw: unknown): AuditEvent[] {
  if (!Array.isArray(raw)) throw new ValidationError("body", "must be a JSON array of audit events");
  if (raw.length === 0) throw new ValidationError("body", "must contain at least one audit event");
  return raw.map((event, i) => validateEvent(event, `event[${i}]`));
}
