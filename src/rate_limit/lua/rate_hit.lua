-- One request against a fixed window that starts at the client's first request.
-- KEYS[1] the client's counter. ARGV: window in ms. Returns { count, ms until the window ends }.
local count = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if count == 1 or ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return { count, ttl }
