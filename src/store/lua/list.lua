-- A user's live sessions in creation order. KEYS[1] the user's index.
-- ARGV: now, record key prefix. Returns { sid, { field, value, ... }, ... }.
local now, prefix = tonumber(ARGV[1]), ARGV[2]
local out = {}
for _, member in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local key = prefix .. member
  local f = redis.call('HMGET', key, 'v', 'e', 'p')
  if f[2] and f[1] == '' and now < tonumber(f[2]) and now <= tonumber(f[3]) then
    out[#out + 1] = member
    out[#out + 1] = redis.call('HGETALL', key)
  end
end
return out
