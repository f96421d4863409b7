-- Gives one reservation back: the count goes down by one, never below zero. A running lock-out
-- stays, and the key keeps its expiry. KEYS[1] the record. Returns 1 when released.
local n = tonumber(redis.call('HGET', KEYS[1], 'n'))
if not n or n <= 0 then return 0 end
redis.call('HINCRBY', KEYS[1], 'n', -1)
return 1
