import type { Occurrences } from "./dedup.js";
import { dedupKey, LuaScript, RECORD, STORM_WINDOW_PREFIX, windowKey } from "./dedup-scripts.js";
import type { RedisLink } from "./redis-link.js";
import type { Priority, ResourceRef, Signal } from "./types.js";

/** What the storm request is made from: the signal that opened the window. */
export interface StormTemplate {
  signal: Signal;
  environment: string;
  priority: Priority;
}

export interface DueWindow {
  id: string;
  template: StormTemplate;
  occurrences: Occurrences;
  resources: ResourceRef[];
}

export interface StormCheck {
  scope: string;
  fingerprint: string;
  resource: ResourceRef;
  template: StormTemplate;
  nowMs: number;
  detectionWindowMs: number;
  rateThreshold: number;
  aggregationWindowMs: number;
  /** How long a window's record outlives its close (members keep pointing at it). */
  keepMs: number;
  /** Dedup TTL: a folded member's hash (which now points at the window) lives this long. */
  ttlMs: number;
}

/** Where windows live: Redis (shared by replicas) or this process (Redis unreachable). */
export interface StormStore {
  /** Counts a new fingerprint; returns the window it is folded into, if any. */
  check(c: StormCheck): Promise<{ windowId: string; opened: boolean } | null>;
  /** Windows past their close time, each handed to one closer for `leaseMs`. */
  claimDue(nowMs: number, leaseMs: number): Promise<DueWindow[]>;
  /** The window's request exists: later members are duplicates of it. */
  record(id: string, ref: string, base: number, firstSeen: string, keepMs: number): Promise<void>;
  retryLater(id: string, atMs: number): Promise<void>;
}

/** Affected resources kept per window (the CRD caps affectedResources at 1000). */
export const MAX_RESOURCES = 1000;

export { windowKey };

const resourcesKey = (id: string) => `gateway:storm:resources:${id}`;
const DUE_KEY = "gateway:storm:due";

/**
 * Sliding detection window per scope (namespace + signal name): a sorted set
 * of the new fingerprints seen, scored by time. Over the threshold, a window
 * opens: `active` points at it for the aggregation time, and its close is
 * scheduled in the `due` set. A folded signal's dedup hash is pointed at the
 * window ("storm:<id>") in the same step, which also makes a retried call
 * harmless: a fingerprint already pointing at a window is not folded again.
 * Window and resource keys are derived from the window id inside the script
 * (fine on a single Redis or a Sentinel group).
 * KEYS: rate, active, due, dedup hash. ARGV: fingerprint, nowMs, nowIso, detectionMs,
 * threshold, aggregationMs, keepMs, resourceJson, templateJson, scope, maxResources, ttlMs.
 * Returns {windowId, opened} or nil (not a storm).
 */
const CHECK = new LuaScript(`
local nowMs = tonumber(ARGV[2])
local prefix = '${STORM_WINDOW_PREFIX}'
local prior = redis.call('HGET', KEYS[4], 'remediationRequestRef') or ''
if string.sub(prior, 1, 6) == 'storm:' then
  local id = string.sub(prior, 7)
  return {id, redis.call('HGET', prefix .. id, 'opener') == ARGV[1] and '1' or '0'}
end
if prior ~= '' then return false end
local function record(id)
  if redis.call('EXISTS', KEYS[4]) == 1 then
    redis.call('HSET', KEYS[4], 'remediationRequestRef', 'storm:' .. id, 'claim', '')
    redis.call('PEXPIRE', KEYS[4], ARGV[12])
  end
end
local function fold(id)
  local r = 'gateway:storm:resources:' .. id
  redis.call('HINCRBY', prefix .. id, 'count', 1)
  redis.call('HSET', prefix .. id, 'lastSeen', ARGV[3])
  if redis.call('SCARD', r) < tonumber(ARGV[11]) then redis.call('SADD', r, ARGV[8]) end
  record(id)
end
local active = redis.call('GET', KEYS[2])
if active then
  fold(active)
  return {active, '0'}
end
redis.call('ZADD', KEYS[1], nowMs, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', nowMs - tonumber(ARGV[4]))
redis.call('PEXPIRE', KEYS[1], ARGV[4])
if redis.call('ZCARD', KEYS[1]) <= tonumber(ARGV[5]) then return false end
local id = ARGV[10] .. '-' .. ARGV[2]
local w = prefix .. id
local r = 'gateway:storm:resources:' .. id
redis.call('HSET', w, 'template', ARGV[9], 'count', 1, 'firstSeen', ARGV[3], 'lastSeen', ARGV[3],
  'remediationRequestRef', '', 'opener', ARGV[1])
redis.call('SADD', r, ARGV[8])
redis.call('PEXPIRE', w, ARGV[7])
redis.call('PEXPIRE', r, ARGV[7])
redis.call('SET', KEYS[2], id, 'PX', ARGV[6])
redis.call('ZADD', KEYS[3], nowMs + tonumber(ARGV[6]), id)
record(id)
return {id, '1'}
`);

/** KEYS: due. ARGV: nowMs, leaseMs, limit. Pushes each returned id's deadline out by the lease. */
const CLAIM_DUE = new LuaScript(`
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, id in ipairs(ids) do redis.call('ZADD', KEYS[1], tonumber(ARGV[1]) + tonumber(ARGV[2]), id) end
return ids
`);

const CLAIM_BATCH = 20;

export class RedisStormStore implements StormStore {
  constructor(private readonly redis: RedisLink) {}

  async check(c: StormCheck) {
    const args = [
      c.fingerprint,
      c.nowMs,
      new Date(c.nowMs).toISOString(),
      c.detectionWindowMs,
      c.rateThreshold,
      c.aggregationWindowMs,
      c.keepMs,
      JSON.stringify(c.resource),
      JSON.stringify(c.template),
      c.scope,
      MAX_RESOURCES,
      c.ttlMs,
    ];
    const keys = [`gateway:storm:rate:${c.scope}`, `gateway:storm:active:${c.scope}`, DUE_KEY, dedupKey(c.fingerprint)];
    const reply = (await this.redis.runConfirmed("storm-check", (r) => CHECK.run(r, keys, args))) as string[] | null;
    return reply ? { windowId: reply[0] as string, opened: reply[1] === "1" } : null;
  }

  async claimDue(nowMs: number, leaseMs: number): Promise<DueWindow[]> {
    const ids = (await this.redis.run("storm-claim", (r) =>
      CLAIM_DUE.run(r, [DUE_KEY], [nowMs, leaseMs, CLAIM_BATCH]),
    )) as string[];
    const windows: DueWindow[] = [];
    for (const id of ids) {
      const [fields, members] = await this.redis.run("storm-read", (r) =>
        Promise.all([r.hgetall(windowKey(id)), r.smembers(resourcesKey(id))]),
      );
      if (!fields.template || fields.remediationRequestRef) {
        await this.redis.run("storm-done", (r) => r.zrem(DUE_KEY, id)); // expired, or closed by someone else
        continue;
      }
      windows.push({
        id,
        template: JSON.parse(fields.template) as StormTemplate,
        occurrences: {
          occurrenceCount: Number(fields.count),
          firstSeenAt: String(fields.firstSeen),
          lastSeenAt: String(fields.lastSeen),
        },
        resources: members.map((m) => JSON.parse(m) as ResourceRef),
      });
    }
    return windows;
  }

  async record(id: string, ref: string, base: number, firstSeen: string, keepMs: number) {
    await this.redis.runConfirmed("storm-record", (r) =>
      RECORD.run(r, [windowKey(id)], [ref, base, firstSeen, keepMs]),
    );
    await this.redis.run("storm-done", (r) => r.zrem(DUE_KEY, id));
  }

  async retryLater(id: string, atMs: number) {
    await this.redis.run("storm-retry", (r) => r.zadd(DUE_KEY, atMs, id));
  }
}

interface MemoryWindow {
  template: StormTemplate;
  closesAt: number;
  occurrences: Occurrences;
  resources: Map<string, ResourceRef>;
}

const MAX_SCOPES = 10_000;

/** The same windows kept in this process while Redis is unreachable. */
export class MemoryStormStore implements StormStore {
  private readonly rates = new Map<string, Map<string, number>>();
  private readonly active = new Map<string, { id: string; until: number }>();
  private readonly windows = new Map<string, MemoryWindow>();

  async check(c: StormCheck) {
    const now = c.nowMs;
    const seenAt = new Date(now).toISOString();
    const resourceId = JSON.stringify(c.resource);
    const open = this.active.get(c.scope);
    const current = open && open.until > now ? this.windows.get(open.id) : undefined;
    if (open && current) {
      current.occurrences.occurrenceCount++;
      current.occurrences.lastSeenAt = seenAt;
      if (current.resources.size < MAX_RESOURCES) current.resources.set(resourceId, c.resource);
      return { windowId: open.id, opened: false };
    }
    if (this.rates.size >= MAX_SCOPES) this.rates.clear(); // a flood of scopes: forget rates rather than grow
    const rate = this.rates.get(c.scope) ?? new Map<string, number>();
    this.rates.set(c.scope, rate);
    rate.set(c.fingerprint, now);
    for (const [fp, at] of rate) if (at <= now - c.detectionWindowMs) rate.delete(fp);
    if (rate.size <= c.rateThreshold) return null;
    const id = `${c.scope}-${now}`;
    this.active.set(c.scope, { id, until: now + c.aggregationWindowMs });
    this.windows.set(id, {
      template: c.template,
      closesAt: now + c.aggregationWindowMs,
      occurrences: { occurrenceCount: 1, firstSeenAt: seenAt, lastSeenAt: seenAt },
      resources: new Map([[resourceId, c.resource]]),
    });
    return { windowId: id, opened: true };
  }

  async claimDue(nowMs: number, leaseMs: number): Promise<DueWindow[]> {
    const due: DueWindow[] = [];
    for (const [id, w] of this.windows) {
      if (w.closesAt > nowMs) continue;
      w.closesAt = nowMs + leaseMs;
      due.push({ id, template: w.template, occurrences: { ...w.occurrences }, resources: [...w.resources.values()] });
    }
    return due;
  }

  async record(id: string) {
    this.windows.delete(id);
    for (const [scope, open] of this.active) if (open.id === id) this.active.delete(scope);
  }

  async retryLater(id: string, atMs: number) {
    const w = this.windows.get(id);
    if (w) w.closesAt = atMs;
  }
}
