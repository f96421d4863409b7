-- One failure that was not reserved (mirrors MemoryAttemptBackend::record_failure_now).
-- KEYS[1] the record: hash fields e (window end), n (count), l (lock-out end, 0 if none).
-- ARGV: now, max failures (0: never locks), window ms, lock-out ms.
-- Returns the count in the window, this failure included. The failure that brings it to max
-- starts a lock-out; a running one is not extended.
local now, max = tonumber(ARGV[1]), tonumber(ARGV[2])
local window, lockout = tonumber(ARGV[3]), tonumber(ARGV[4])
local f = redis.call('HMGET', KEYS[1], 'e', 'n', 'l')
local e, n, l = tonumber(f[1]), tonumber(f[2]), tonumber(f[3])
if not (l and l > now) then
  if not e or not n or (l and l ~= 0) or now >= e then
    e, n, l = now + window, 0, 0
  end
end
n = n + 1
if max > 0 and n == max and l == 0 then
  l = now + math.max(lockout, 1)
end
redis.call('HSET', KEYS[1], 'e', e, 'n', n, 'l', l)
redis.call('PEXPIRE', KEYS[1], math.max(math.max(e, l) - now, 1))
return n
