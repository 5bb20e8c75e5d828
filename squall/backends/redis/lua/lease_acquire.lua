-- KEYS: lease. ARGV: holder, now, expires.
local holder = redis.call('HGET', KEYS[1], 'holder')
if holder and holder ~= ARGV[1]
    and tonumber(redis.call('HGET', KEYS[1], 'expires')) > tonumber(ARGV[2]) then
  return 0
end
redis.call('HSET', KEYS[1], 'holder', ARGV[1], 'expires', ARGV[3])
return 1
