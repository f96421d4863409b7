-- Revoke every live session of a user. KEYS[1] the user's index.
-- ARGV: now, record key prefix, channel. Returns the revoked session ids.
local now, prefix, channel = tonumber(ARGV[1]), ARGV[2], ARGV[3]
local revoked = {}
for _, member in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local key = prefix .. member
  local f = redis.call('HMGET', key, 'v', 'e')
  if not f[2] then
    redis.call('ZREM', KEYS[1], member)
  elseif not f[1] and now < tonumber(f[2]) then
    redis.call('HSET', key, 'v', ARGV[1])
    redis.call('PUBLISH', channel, member)
    revoked[#revoked + 1] = member
  end
end
return revoked
