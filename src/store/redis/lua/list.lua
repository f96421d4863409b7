-- A user's live sessions in creation order. KEYS[1] the user's index.
-- ARGV: now, record key prefix.
-- Returns { sid, { field, value, ... }, pttl, ... }. Members whose record is gone, ended (older
-- versions marked it `v`) or past its purge time are deleted on the way.
local now, prefix = tonumber(ARGV[1]), ARGV[2]
local out = {}
for _, member in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local key = prefix .. member
  local f = redis.call('HMGET', key, 'v', 'e', 'p')
  if not f[2] then
    redis.call('ZREM', KEYS[1], member)
  else
    local expires = tonumber(f[2])
    if f[1] or (f[3] and now > tonumber(f[3])) then
      redis.call('DEL', key)
      redis.call('ZREM', KEYS[1], member)
    elseif now < expires then
      out[#out + 1] = member
      out[#out + 1] = redis.call('HGETALL', key)
      out[#out + 1] = redis.call('PTTL', key)
    end
  end
end
return out
