-- One failed attempt (mirrors MemoryAttemptBackend). KEYS[1] the user's or IP's record.
-- ARGV: now, max failures, window ms, lock-out ms.
-- Returns the end of the lock-out this failure starts, or false.
local now, max = tonumber(ARGV[1]), tonumber(ARGV[2])
local window, lockout = tonumber(ARGV[3]), tonumber(ARGV[4])
local f = redis.call('HMGET', KEYS[1], 's', 'n', 'l')
local start, n, locked = tonumber(f[1]), tonumber(f[2]), tonumber(f[3])
if locked and locked > now then return false end
if not start or (locked and locked ~= 0) or now >= start + window then
  start, n, locked = now, 0, 0
end
n = n + 1
local started = false
if n >= max then
  locked = now + lockout
  n = 0
  started = locked
end
redis.call('HSET', KEYS[1], 's', start, 'n', n, 'l', locked)
redis.call('PEXPIRE', KEYS[1], math.max(math.max(start + window, locked) - now, 1))
return started
