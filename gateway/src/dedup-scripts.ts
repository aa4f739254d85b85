import { createHash } from "node:crypto";
import type { Redis } from "ioredis";

/** A Lua script run by SHA, loaded on first use (and again after a failover to a node without it). */
export class LuaScript {
  private readonly sha: string;
  constructor(private readonly source: string) {
    this.sha = createHash("sha1").update(source).digest("hex");
  }
  async run(redis: Redis, keys: string[], args: (string | number)[]): Promise<unknown> {
    try {
      return await redis.evalsha(this.sha, keys.length, ...keys, ...args);
    } catch (err) {
      if (!(err as Error).message?.startsWith("NOSCRIPT")) throw err;
      return redis.eval(this.source, keys.length, ...keys, ...args);
    }
  }
}

/**
 * Lua scripts on the per-fingerprint hash `gateway:dedup:fingerprint:<fp>`
 * (fields fingerprint, signalName, namespace, resource, firstSeen, lastSeen,
 * count, remediationRequestRef, plus claim/claimedAt for the creator and
 * flushedCount for the status flusher). Each runs atomically in Redis.
 */

/**
 * Check-and-claim, the one atomic step of section 4.
 * KEYS[1] hash. ARGV: fingerprint, signalName, namespace, resource, nowIso,
 * nowMs, ttlMs, token, leaseMs, increment ("1" counts this sighting).
 * Returns {state, ref, count, firstSeen, lastSeen}; state is
 *   claimed - the caller creates the RemediationRequest (first sighting, a
 *             released claim, or a claim whose creator vanished past its lease);
 *   known   - ref is set: a duplicate (counted);
 *   pending - another caller is creating it (counted against that claim).
 * A retried call with the same token finds its own claim and is not counted twice.
 */
export const SIGHT = new LuaScript(`
local key = KEYS[1]
local now, nowMs, ttl, token, lease = ARGV[5], tonumber(ARGV[6]), tonumber(ARGV[7]), ARGV[8], tonumber(ARGV[9])
local inc = ARGV[10] == '1'
local function reply(state)
  local f = redis.call('HMGET', key, 'remediationRequestRef', 'count', 'firstSeen', 'lastSeen')
  return {state, f[1] or '', f[2] or '0', f[3] or now, f[4] or now}
end
local function count()
  if inc then
    redis.call('HINCRBY', key, 'count', 1)
    redis.call('HSET', key, 'lastSeen', now)
  end
end
if redis.call('EXISTS', key) == 0 then
  redis.call('HSET', key, 'fingerprint', ARGV[1], 'signalName', ARGV[2], 'namespace', ARGV[3], 'resource', ARGV[4],
    'firstSeen', now, 'lastSeen', now, 'count', 1, 'remediationRequestRef', '', 'claim', token, 'claimedAt', nowMs)
  redis.call('PEXPIRE', key, math.max(ttl, lease))
  return reply('claimed')
end
local ref = redis.call('HGET', key, 'remediationRequestRef')
if ref and ref ~= '' then
  count()
  redis.call('PEXPIRE', key, ttl)
  return reply('known')
end
local claim = redis.call('HGET', key, 'claim') or ''
if claim == token then
  return reply('claimed')
end
count()
redis.call('PEXPIRE', key, math.max(ttl, lease))
local claimedAt = tonumber(redis.call('HGET', key, 'claimedAt') or '0')
if claim ~= '' and claimedAt + lease > nowMs then
  return reply('pending')
end
redis.call('HSET', key, 'claim', token, 'claimedAt', nowMs)
return reply('claimed')
`);

/**
 * Records where the signals of this hash went (a RemediationRequest "ns/name"
 * or a storm window "storm:<id>") and ends the claim. When the request was
 * adopted, its existing occurrence count (ARGV[2]) and firstSeen (ARGV[3], may
 * be empty) are added so the count stays authoritative. A ref recorded by
 * someone else first wins. KEYS[1] hash (window hashes use it too).
 * ARGV: ref, baseCount, firstSeen, ttlMs. Returns {ref, count, firstSeen, lastSeen} or nil.
 */
export const RECORD = new LuaScript(`
local key = KEYS[1]
if redis.call('EXISTS', key) == 0 then return nil end
local current = redis.call('HGET', key, 'remediationRequestRef') or ''
if current == '' then
  local base = tonumber(ARGV[2])
  if base > 0 then redis.call('HINCRBY', key, 'count', base) end
  if ARGV[3] ~= '' then redis.call('HSET', key, 'firstSeen', ARGV[3]) end
  redis.call('HSET', key, 'remediationRequestRef', ARGV[1])
  current = ARGV[1]
end
redis.call('HSET', key, 'claim', '')
redis.call('PEXPIRE', key, tonumber(ARGV[4]))
local f = redis.call('HMGET', key, 'count', 'firstSeen', 'lastSeen')
return {current, f[1], f[2], f[3]}
`);

/**
 * Takes back one sighting that will not be answered 2xx (its creation failed
 * or it gave up waiting), so the count stays exact. Ends the claim if the
 * token holds it, so a waiting caller can take over. KEYS[1] hash. ARGV: token.
 */
export const RELEASE = new LuaScript(`
local key = KEYS[1]
if redis.call('EXISTS', key) == 0 then return 0 end
local c = redis.call('HINCRBY', key, 'count', -1)
if redis.call('HGET', key, 'claim') == ARGV[1] then redis.call('HSET', key, 'claim', '') end
if c <= 0 and redis.call('HGET', key, 'remediationRequestRef') == '' then redis.call('DEL', key) end
return c
`);

/**
 * Adds occurrences counted while Redis was unreachable (they went straight to
 * the RemediationRequest's status) to the hash, if it still points at that request.
 * KEYS[1] hash. ARGV: ref, delta.
 */
export const ADD_COUNT = new LuaScript(`
if redis.call('HGET', KEYS[1], 'remediationRequestRef') ~= ARGV[1] then return 0 end
return redis.call('HINCRBY', KEYS[1], 'count', tonumber(ARGV[2]))
`);

/**
 * The status flusher wrote `count` (ARGV[1]) to the request. Returns 0 when a
 * higher count had already been written (by another replica): the caller's
 * write was stale and must be redone. KEYS[1] hash.
 */
export const MARK_FLUSHED = new LuaScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 1 end
local flushed = tonumber(redis.call('HGET', KEYS[1], 'flushedCount') or '0')
if flushed > tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'flushedCount', ARGV[1])
return 1
`);
