-- A user's live sessions in creation order. KEYS[1] the user's index.
-- ARGV: now, record key prefix. Returns { sid, { field, value, ... }, pttl, ... }.
local now, prefix = tonumber(ARGV[1]), ARGV[2]
local out = {}
for _, member in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local key = prefix .. member
  local f = redis.call('HMGET', key, 'v', 'e')
  if f[2] and not f[1] and now < tonumber(f[2]) then
    out[#out + 1] = member
    out[#out + 1] = redis.call('HGETALL', key)
    out[#out + 1] = redis.call('PTTL', key)
  end
end
return out
