import { createHash, randomUUID } from "node:crypto";
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
 * Deduplication state is one Redis hash per fingerprint. The fingerprint
 * already hashes the namespace (section 3), so the state is scoped per
 * namespace without the namespace in the key.
 */
const DEDUP_PREFIX = "gateway:dedup:fingerprint:";
export const dedupKey = (fingerprint: string) => `${DEDUP_PREFIX}${fingerprint}`;
export const isDedupKey = (key: string) => key.startsWith(DEDUP_PREFIX);

/**
 * A source of the ids the scripts remember in a hash's `tokens` (sighting tokens, degraded-count
 * additions): unique across processes and calls, without spaces (the list is space-delimited).
 */
export function tokenSource(): () => string {
  const prefix = randomUUID().slice(0, 8);
  let next = 0;
  return () => `${prefix}.${(next++).toString(36)}`;
}

/** Storm window hashes (the dedup scripts count repeats of storm members there too). */
export const STORM_WINDOW_PREFIX = "gateway:storm:window:";
export const windowKey = (id: string) => `${STORM_WINDOW_PREFIX}${id}`;

/**
 * Lua scripts on the per-fingerprint hash `gateway:dedup:fingerprint:<fp>`
 * (fields fingerprint, signalName, namespace, resource, firstSeen, lastSeen,
 * count, remediationRequestRef, plus claim/claimedAt for the creator and
 * `tokens`, the last few sighting tokens counted). Each runs atomically in Redis.
 *
 * Every counting script is idempotent per sighting token: a call that ran in
 * Redis but whose answer was lost (a stalled event loop, a command timeout)
 * is retried with the same token and does not count again (D2 exactly).
 */

/**
 * Lua helpers: the `tokens` field holds the tokens counted last, space-delimited, in at most
 * TOKENS_CHARS characters (about 60 tokens): enough that a sighting taken back after Redis
 * was away (its answer lost) is still found on a busy fingerprint.
 */
const TOKENS_CHARS = 1_000;
const TOKENS = `
local function seen(key, token)
  local recent = redis.call('HGET', key, 'tokens') or ''
  return string.find(recent, ' ' .. token .. ' ', 1, true) ~= nil
end
local function remember(key, token)
  local recent = ' ' .. token .. (redis.call('HGET', key, 'tokens') or ' ')
  redis.call('HSET', key, 'tokens', string.sub(recent, 1, ${TOKENS_CHARS}))
end
`;

/**
 * Check-and-claim, the one atomic step of section 4.
 * KEYS[1] hash. ARGV: fingerprint, signalName, namespace, resource, nowIso,
 * nowMs, ttlMs, token, leaseMs, stormKeepMs.
 * Returns {state, ref, count, firstSeen, lastSeen}; state is
 *   claimed - the caller creates the RemediationRequest (first sighting, a
 *             released claim, or a claim whose creator vanished past its lease);
 *   known   - ref is a RemediationRequest: a duplicate (counted);
 *   storm   - ref is "storm:<window>": a repeat of a storm member, counted in
 *             the fingerprint and in the window; the reply carries the window's
 *             {ref, count, firstSeen, lastSeen} and its id (storm-lost: the window expired);
 *   pending - another caller is creating it; NOT counted (the caller asks again).
 * A claimed reply carries, 6th, the creation tokens (space-separated) of earlier
 * claimers whose creation had no known outcome (`orphan`, set by RELEASE), or ''.
 * Counted sightings remember their token, so a retried call is not counted twice.
 */
export const SIGHT = new LuaScript(`${TOKENS}
local key = KEYS[1]
local now, nowMs, ttl, token, lease = ARGV[5], tonumber(ARGV[6]), tonumber(ARGV[7]), ARGV[8], tonumber(ARGV[9])
local function reply(state)
  local f = redis.call('HMGET', key, 'remediationRequestRef', 'count', 'firstSeen', 'lastSeen')
  return {state, f[1] or '', f[2] or '0', f[3] or now, f[4] or now}
end
local function count()
  if seen(key, token) then return false end
  redis.call('HINCRBY', key, 'count', 1)
  redis.call('HSET', key, 'lastSeen', now)
  remember(key, token)
  return true
end
if redis.call('EXISTS', key) == 0 then
  redis.call('HSET', key, 'fingerprint', ARGV[1], 'signalName', ARGV[2], 'namespace', ARGV[3], 'resource', ARGV[4],
    'firstSeen', now, 'lastSeen', now, 'count', 1, 'remediationRequestRef', '', 'claim', token, 'claimedAt', nowMs,
    'tokens', ' ' .. token .. ' ')
  redis.call('PEXPIRE', key, math.max(ttl, lease))
  return reply('claimed')
end
local ref = redis.call('HGET', key, 'remediationRequestRef') or ''
if string.sub(ref, 1, 6) == 'storm:' then
  local window = '${STORM_WINDOW_PREFIX}' .. string.sub(ref, 7)
  local counted = count()
  redis.call('PEXPIRE', key, ttl)
  if redis.call('EXISTS', window) == 0 then return reply('storm-lost') end
  if counted then
    redis.call('HINCRBY', window, 'count', 1)
    redis.call('HSET', window, 'lastSeen', now)
  end
  redis.call('PEXPIRE', window, tonumber(ARGV[10]))
  local w = redis.call('HMGET', window, 'remediationRequestRef', 'count', 'firstSeen', 'lastSeen')
  return {'storm', w[1] or '', w[2] or '0', w[3] or now, w[4] or now, string.sub(ref, 7)}
end
if ref ~= '' then
  count()
  redis.call('PEXPIRE', key, ttl)
  return reply('known')
end
local function claimed()
  local r = reply('claimed')
  r[6] = redis.call('HGET', key, 'orphan') or ''
  return r
end
local claim = redis.call('HGET', key, 'claim') or ''
if claim == token then
  return claimed()
end
local claimedAt = tonumber(redis.call('HGET', key, 'claimedAt') or '0')
if claim ~= '' and claimedAt + lease > nowMs then
  return reply('pending')
end
count()
redis.call('HSET', key, 'claim', token, 'claimedAt', nowMs)
redis.call('PEXPIRE', key, math.max(ttl, lease))
return claimed()
`);

/**
 * Records where the signals of this hash went (a RemediationRequest "ns/name"
 * or a storm window "storm:<id>") and ends the claim. When the request was
 * adopted, its existing occurrence count (ARGV[2]) and firstSeen (ARGV[3], may
 * be empty) are added so the count stays authoritative; the count is kept as
 * `adoptedCount`, so degraded-mode counts already in it are not added again
 * (ADD_COUNT). A ref recorded by someone else first wins. KEYS[1] hash (window
 * hashes use it too).
 * ARGV: ref, baseCount, firstSeen, ttlMs. Returns {ref, count, firstSeen, lastSeen} or nil.
 */
export const RECORD = new LuaScript(`
local key = KEYS[1]
if redis.call('EXISTS', key) == 0 then return nil end
local current = redis.call('HGET', key, 'remediationRequestRef') or ''
if current == '' then
  local base = tonumber(ARGV[2])
  if base > 0 then
    redis.call('HINCRBY', key, 'count', base)
    redis.call('HSET', key, 'adoptedCount', base)
  end
  if ARGV[3] ~= '' then redis.call('HSET', key, 'firstSeen', ARGV[3]) end
  redis.call('HSET', key, 'remediationRequestRef', ARGV[1])
  current = ARGV[1]
end
redis.call('HSET', key, 'claim', '', 'orphan', '')
redis.call('PEXPIRE', key, tonumber(ARGV[4]))
local f = redis.call('HMGET', key, 'count', 'firstSeen', 'lastSeen')
return {current, f[1], f[2], f[3]}
`);

/**
 * Takes back a sighting: the creator's when its creation failed (it is answered
 * with an error), or one whose answer was lost and that was counted via the
 * Kubernetes API instead, so the count stays exact; ends its claim so a
 * waiting caller can take over. A creator that got no answer from the API
 * server adds its creation token (ARGV[2], may be empty) to `orphan`: its
 * request may exist, and the next claimer that finds it finishes the creation.
 * Idempotent: only a token still remembered as counted is taken back.
 * KEYS[1] hash. ARGV: token, orphan.
 * Returns {count, ref}, or nil when there was nothing to take back.
 */
export const RELEASE = new LuaScript(`${TOKENS}
local key = KEYS[1]
if redis.call('EXISTS', key) == 0 then return nil end
local token, orphan = ARGV[1], ARGV[2] or ''
if redis.call('HGET', key, 'claim') == token then
  redis.call('HSET', key, 'claim', '')
  if orphan ~= '' then
    -- The last few: each creator that gave up may be the one whose request landed.
    local earlier = redis.call('HGET', key, 'orphan') or ''
    redis.call('HSET', key, 'orphan', string.sub(orphan .. ' ' .. earlier, 1, 200))
  end
end
if not seen(key, token) then return nil end
local recent = redis.call('HGET', key, 'tokens')
local at = string.find(recent, ' ' .. token .. ' ', 1, true)
redis.call('HSET', key, 'tokens', string.sub(recent, 1, at) .. string.sub(recent, at + string.len(token) + 2))
local c = redis.call('HINCRBY', key, 'count', -1)
local ref = redis.call('HGET', key, 'remediationRequestRef') or ''
-- An orphan mark outlives the count: the next claimer needs it.
if c <= 0 and ref == '' and orphan == '' then redis.call('DEL', key) end
-- A storm member's sighting was counted in its window too.
local window = '${STORM_WINDOW_PREFIX}' .. string.sub(ref, 7)
if string.sub(ref, 1, 6) == 'storm:' and redis.call('EXISTS', window) == 1 then
  redis.call('HINCRBY', window, 'count', -1)
end
return {c, ref}
`);

/**
 * Adds occurrences counted while Redis was unreachable (they went straight to the request's
 * status, raising it to ARGV[4]) to the hash; once per id (a retry after a lost answer adds
 * nothing). KEYS[1] hash. ARGV: ref, delta, id, countInStatus, then what to do without a hash:
 * "restore" (countInStatus is all the request's status holds; firstSeen, lastSeen and ttlMs
 * follow), "wait" (more counts are on their way to the status) or "" (a storm window: gone).
 * Returns what became of them:
 *   added    - counted in the hash;
 *   restored - there was no hash (a request created without Redis, or Redis lost it): it is
 *              made as an adopter records the request, with the status count;
 *   included - the hash adopted the request with a status count that already held them;
 *   gone     - the hash follows another request, or a storm window's is gone: whoever records
 *              this request next reads its status, which holds them;
 *   later    - a claimer is creating or adopting the request right now (whether the status it
 *              read holds them is known once it has recorded it), or there is no hash while
 *              counts are still on their way to the status;
 *   seen     - this id was settled before (a retry after a lost answer): nothing changes.
 */
export const ADD_COUNT = new LuaScript(`${TOKENS}
local key, id = KEYS[1], ARGV[3]
if seen(key, id) then return 'seen' end
local ref = redis.call('HGET', key, 'remediationRequestRef')
if not ref then
  if ARGV[5] == 'wait' then return 'later' end
  if ARGV[5] ~= 'restore' then return 'gone' end
  redis.call('HSET', key, 'remediationRequestRef', ARGV[1], 'count', ARGV[4], 'adoptedCount', ARGV[4],
    'firstSeen', ARGV[6], 'lastSeen', ARGV[7], 'claim', '')
  remember(key, id)
  redis.call('PEXPIRE', key, tonumber(ARGV[8]))
  return 'restored'
end
if ref == '' and (redis.call('HGET', key, 'claim') or '') ~= '' then return 'later' end
if ref ~= ARGV[1] then return 'gone' end
remember(key, id)
-- The request's status chain only grows until Redis follows it: a count at or below the
-- adopted one was read by the adopter.
if tonumber(ARGV[4]) <= tonumber(redis.call('HGET', key, 'adoptedCount') or '0') then return 'included' end
redis.call('HINCRBY', key, 'count', tonumber(ARGV[2]))
return 'added'
`);
