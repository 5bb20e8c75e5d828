-- KEYS: lease. ARGV: holder, now. An expired lease is deleted too, but was not held.
if redis.call('HGET', KEYS[1], 'holder') ~= ARGV[1] then return 0 end
local live = tonumber(redis.call('HGET', KEYS[1], 'expires')) > tonumber(ARGV[2])
redis.call('DEL', KEYS[1])
if live then return 1 end
return 0
