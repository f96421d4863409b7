-- Rotate a refresh token: decide_rotation in store/mod.rs, applied atomically.
-- KEYS[1] the record. ARGV: now, presented generation, refresh ttl, reuse interval,
-- access retention, channel, sid, index key prefix (the index is that prefix .. field `i`),
-- the caller's deadline (ms since the epoch, 0 for none), then, when the rotation carries an
-- update: the new roles' JSON, the new authentication context's field `au` ('' keeps it), and
-- the custom claims' fields as name, value pairs (`k`, `k1`, …; none when there are no claims),
-- which replace the old ones only when the generation advances. An update with an
-- authentication context is a re-authentication: its generation is the one the caller read, so
-- any other is a lost race, answered not_found with nothing changed (never grace, never reuse).
-- Returns { outcome, { field, value, ... }, pttl } with the record after the change (for a
-- reuse: as it was when it was deleted), or { 'deadline' } when this server reached the script
-- after the caller's deadline by its own clock (a stall): nothing is changed then, since the
-- caller has answered an error and its client still holds the token it presented.
local record = KEYS[1]
local now, presented = tonumber(ARGV[1]), tonumber(ARGV[2])
local refresh_ttl, reuse, retention = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local deadline = tonumber(ARGV[9])
if deadline > 0 then
  -- TIME is non-deterministic: replicate this script's effects, not the script (the default
  -- since Redis 5, and the only mode of Redis 7; older servers need the call).
  if redis.replicate_commands then redis.replicate_commands() end
  local t = redis.call('TIME')
  if tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) > deadline then
    return { 'deadline' }
  end
end

local f = redis.call('HMGET', record, 'v', 'e', 'g', 'x', 'a', 'i', 'p')
if not f[2] then return { 'not_found' } end
local expires, current = tonumber(f[2]), tonumber(f[3])

-- Deletes the record and takes it out of its user's index: an ended session is not kept.
local function drop()
  redis.call('DEL', record)
  if f[6] then redis.call('ZREM', ARGV[8] .. f[6], ARGV[7]) end
end

if f[1] then
  drop()
  return { 'revoked' }
end
if f[7] and now > tonumber(f[7]) then
  drop()
  return { 'not_found' }
end
if now >= expires then return { 'session_expired' } end

if ARGV[11] and ARGV[11] ~= '' and presented ~= current then return { 'not_found' } end

if presented == current then
  if now >= tonumber(f[4]) then return { 'token_expired' } end
  local refresh_expires = math.min(now + refresh_ttl, expires)
  local new_purge = math.min(math.max(refresh_expires, now + retention), expires + retention)
  redis.call('HSET', record, 'g', current + 1, 'a', ARGV[1], 'x', refresh_expires, 'p', new_purge)
  if ARGV[10] then
    for _, name in ipairs(redis.call('HKEYS', record)) do
      if string.match(name, '^k%d*$') then redis.call('HDEL', record, name) end
    end
    redis.call('HSET', record, 'r', ARGV[10])
    if ARGV[11] ~= '' then redis.call('HSET', record, 'au', ARGV[11]) end
    for i = 12, #ARGV, 2 do
      redis.call('HSET', record, ARGV[i], ARGV[i + 1])
    end
  end
  redis.call('PEXPIREAT', record, new_purge + 1)
  return { 'rotated', redis.call('HGETALL', record), redis.call('PTTL', record) }
elseif presented > current then
  return { 'not_found' }
elseif presented + 1 == current and now < tonumber(f[5]) + reuse then
  return { 'grace', redis.call('HGETALL', record), redis.call('PTTL', record) }
end
local fields, pttl = redis.call('HGETALL', record), redis.call('PTTL', record)
drop()
redis.call('PUBLISH', ARGV[6], ARGV[7])
local outcome = 'reused_ancestor'
if presented + 1 == current then outcome = 'reused_retired' end
return { outcome, fields, pttl }
