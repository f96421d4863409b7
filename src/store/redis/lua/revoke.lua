-- Revoke one session: delete its record and take it out of its user's index.
-- KEYS[1] the record. ARGV: now, channel (empty: publish nothing, the caller publishes once
-- replicas confirm the write), sid, index key prefix.
-- Returns 1 if the session was live.
local f = redis.call('HMGET', KEYS[1], 'v', 'e', 'p', 'i')
-- Publish in every case: an instance may hold a stale "active" for a session ended elsewhere.
if ARGV[2] ~= '' then redis.call('PUBLISH', ARGV[2], ARGV[3]) end
if not f[2] then return 0 end
local now = tonumber(ARGV[1])
redis.call('DEL', KEYS[1])
if f[4] then redis.call('ZREM', ARGV[4] .. f[4], ARGV[3]) end
if not f[1] and now < tonumber(f[2]) and not (f[3] and now > tonumber(f[3])) then
  return 1
end
return 0
