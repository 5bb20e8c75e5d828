-- KEYS: at, due, payload, rcpt. ARGV: key, receipt.
if redis.call('HGET', KEYS[4], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('ZREM', KEYS[1], ARGV[1])
for i = 2, 4 do redis.call('HDEL', KEYS[i], ARGV[1]) end
return 1
