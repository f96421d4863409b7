-- Revoke one session if it is live. KEYS[1] the record. ARGV: now, channel, sid.
local f = redis.call('HMGET', KEYS[1], 'v', 'e')
if not f[2] then return 0 end
local now = tonumber(ARGV[1])
if not f[1] and now < tonumber(f[2]) then
  redis.call('HSET', KEYS[1], 'v', ARGV[1])
  redis.call('PUBLISH', ARGV[2], ARGV[3])
  return 1
end
-- Publish anyway: an instance may hold a stale "active" for a session revoked elsewhere.
redis.call('PUBLISH', ARGV[2], ARGV[3])
return 0
