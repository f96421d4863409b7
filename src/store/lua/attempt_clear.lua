-- A success clears the count, but never a running lock-out. KEYS[1] the record.
local l = redis.call('HGET', KEYS[1], 'l')
if l and tonumber(l) ~= 0 then return 0 end
redis.call('DEL', KEYS[1])
return 1
