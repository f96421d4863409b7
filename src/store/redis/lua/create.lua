-- Create a session, applying the per-user limit atomically (plan_admission in store/mod.rs).
-- KEYS[1] the user's index (zset of session ids by creation), KEYS[2] the new record.
-- ARGV: now, max, policy, sid, record key prefix, channel (empty: publish nothing, the caller
--       publishes once replicas confirm the write),
--       created, active, expires, generation, refresh_expires, purge, index expiry,
--       the index's name suffix (`i`: how the record finds its index),
--       then the record's data fields as name, value pairs (`u` user, `r` roles and the
--       device's `l` label and `ip` address when known, or `d` the whole record sealed).
-- Ended sessions are deleted at once, and a record past its purge time `p` counts as gone (it is
-- deleted here too), so the index holds the user's live sessions plus those that expired
-- within the last access-token lifetime: the loop below is bounded by that, whatever the
-- user's history. `v` (revoked at) is only found on records written by older versions.
local index, record = KEYS[1], KEYS[2]
local now, max = tonumber(ARGV[1]), tonumber(ARGV[2])
local deny = ARGV[3] == 'deny'
local sid, prefix, channel = ARGV[4], ARGV[5], ARGV[6]

local live = {}
for position, member in ipairs(redis.call('ZRANGE', index, 0, -1)) do
  local key = prefix .. member
  local f = redis.call('HMGET', key, 'v', 'e', 'a', 'p')
  if not f[2] then
    redis.call('ZREM', index, member)
  else
    local expires, active = tonumber(f[2]), tonumber(f[3])
    if f[1] or (f[4] and now > tonumber(f[4])) then
      redis.call('DEL', key)
      redis.call('ZREM', index, member)
    elseif now < expires then
      live[#live + 1] = { member, active, position }
    end
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
    redis.call('DEL', prefix .. live[i][1])
    redis.call('ZREM', index, live[i][1])
    if channel ~= '' then redis.call('PUBLISH', channel, live[i][1]) end
    result[#result + 1] = live[i][1]
  end
end

redis.call('HSET', record,
  'c', ARGV[7], 'a', ARGV[8], 'e', ARGV[9], 'g', ARGV[10], 'x', ARGV[11], 'p', ARGV[12], 'i', ARGV[14])
for i = 15, #ARGV, 2 do
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
