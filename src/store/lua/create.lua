-- Create a session, applying the per-user limit atomically (plan_admission in store/mod.rs).
-- KEYS[1] the user's index (zset of session ids by creation), KEYS[2] the new record.
-- ARGV: now, max, policy, sid, record key prefix, channel,
--       created, active, expires, generation, refresh_expires, purge, index expiry,
--       then the record's data fields as name, value pairs (`u` user and `r` roles, or `d`
--       the two sealed together).
-- A record's key expires at its purge time, so an existing key is never past it; `v` (revoked
-- at) is absent while the session is live; the rotation time is `a` (last active).
local index, record = KEYS[1], KEYS[2]
local now, max = tonumber(ARGV[1]), tonumber(ARGV[2])
local deny = ARGV[3] == 'deny'
local sid, prefix, channel = ARGV[4], ARGV[5], ARGV[6]

local live = {}
for position, member in ipairs(redis.call('ZRANGE', index, 0, -1)) do
  local f = redis.call('HMGET', prefix .. member, 'v', 'e', 'a')
  if not f[2] then
    redis.call('ZREM', index, member)
  elseif not f[1] and now < tonumber(f[2]) then
    live[#live + 1] = { member, tonumber(f[3]), position }
  end
end

local result = { 'ok' }
if #live >= max then
  if deny then
    return { 'deny' }
  end
  -- Least recently active first; creation order breaks ties.
  table.sort(live, function(a, b)
    if a[2] ~= b[2] then return a[2] < b[2] end
    return a[3] < b[3]
  end)
  for i = 1, #live - max + 1 do
    redis.call('HSET', prefix .. live[i][1], 'v', ARGV[1])
    redis.call('PUBLISH', channel, live[i][1])
    result[#result + 1] = live[i][1]
  end
end

redis.call('HSET', record,
  'c', ARGV[7], 'a', ARGV[8], 'e', ARGV[9], 'g', ARGV[10], 'x', ARGV[11])
for i = 14, #ARGV, 2 do
  redis.call('HSET', record, ARGV[i], ARGV[i + 1])
end
redis.call('PEXPIREAT', record, tonumber(ARGV[12]) + 1)
redis.call('ZADD', index, ARGV[7], sid)
local index_expiry = tonumber(ARGV[13])
local ttl = redis.call('PTTL', index)
if ttl < 0 or now + ttl < index_expiry then
  redis.call('PEXPIREAT', index, index_expiry)
end
return result
