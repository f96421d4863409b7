-- Reserves one attempt (mirrors MemoryAttemptBackend::reserve_now), atomically: a check and an
-- increment in one step, so concurrent reservations never both take the last one.
-- KEYS[1] the record: hash fields e (window end), n (count), l (lock-out end, 0 if none).
-- ARGV: now, max attempts, window ms, lock-out ms (all milliseconds).
-- Returns 0 when reserved, else the end of the lock-out (running, or started by this call).
local now, max = tonumber(ARGV[1]), tonumber(ARGV[2])
local window, lockout = tonumber(ARGV[3]), tonumber(ARGV[4])
local f = redis.call('HMGET', KEYS[1], 'e', 'n', 'l')
local e, n, l = tonumber(f[1]), tonumber(f[2]), tonumber(f[3])
if l and l > now then return l end
if not e or not n or (l and l ~= 0) or now >= e then
  e, n, l = now + window, 0, 0
end
local keep_until = e
if n >= max then
  l = now + math.max(lockout, 1)
  keep_until = math.max(e, l)
else
  n = n + 1
end
redis.call('HSET', KEYS[1], 'e', e, 'n', n, 'l', l)
redis.call('PEXPIRE', KEYS[1], math.max(keep_until - now, 1))
return l
