-- Rotate a refresh token: decide_rotation in store/mod.rs, applied atomically.
-- KEYS[1] the record. ARGV: now, presented generation, refresh ttl, reuse interval,
-- access retention, channel, sid.
-- Returns { outcome, { field, value, ... }, pttl } with the record after the change.
local record = KEYS[1]
local now, presented = tonumber(ARGV[1]), tonumber(ARGV[2])
local refresh_ttl, reuse, retention = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])

local f = redis.call('HMGET', record, 'v', 'e', 'g', 'x', 'a')
if not f[2] then return { 'not_found' } end
if f[1] then return { 'revoked' } end
local expires, current = tonumber(f[2]), tonumber(f[3])
if now >= expires then return { 'session_expired' } end

local outcome
if presented == current then
  if now >= tonumber(f[4]) then return { 'token_expired' } end
  local refresh_expires = math.min(now + refresh_ttl, expires)
  local purge = math.min(math.max(refresh_expires, now + retention), expires + retention)
  redis.call('HSET', record, 'g', current + 1, 'a', ARGV[1], 'x', refresh_expires)
  redis.call('PEXPIREAT', record, purge + 1)
  outcome = 'rotated'
elseif presented > current then
  return { 'not_found' }
elseif presented + 1 == current and now < tonumber(f[5]) + reuse then
  outcome = 'grace'
else
  redis.call('HSET', record, 'v', ARGV[1])
  redis.call('PUBLISH', ARGV[6], ARGV[7])
  if presented + 1 == current then outcome = 'reused_retired' else outcome = 'reused_ancestor' end
end
return { outcome, redis.call('HGETALL', record), redis.call('PTTL', record) }
