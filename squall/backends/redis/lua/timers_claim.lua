-- KEYS: at, due, payload, rcpt. ARGV: due by (now + ahead), lease end, limit, nonce.
-- Returns {key, due, payload, receipt} rows in the order they became visible.
local out = {}
for i, key in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])) do
  local receipt = ARGV[4] .. ':' .. i
  redis.call('ZADD', KEYS[1], ARGV[2], key)
  redis.call('HSET', KEYS[4], key, receipt)
  out[#out + 1] = {key, redis.call('HGET', KEYS[2], key), redis.call('HGET', KEYS[3], key), receipt}
end
return out
