-- KEYS: nodes, node expiry. ARGV: node, JSON, now, expires. Forgets expired nodes too.
for _, node in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[3])) do
  redis.call('HDEL', KEYS[1], node)
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[3])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
