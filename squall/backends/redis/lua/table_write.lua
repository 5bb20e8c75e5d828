-- include: _stream.lua
-- A table write, and with the change feed its change record: one atomic operation
-- (squall/backends/changefeed.py).
-- KEYS: items, keys [, registry, seq hash, shard stream]. ARGV: key, stored text expected
-- ('' = absent), new stored text ('' = delete) [, change record ARGV as in _stream.lua].
-- Writes only if the item is still what the caller read; returns 'ok', 'stale' or 'reshard'.
if (redis.call('HGET', KEYS[1], ARGV[1]) or '') ~= ARGV[2] then return 'stale' end
if KEYS[3] and not shards_ok(3, 4) then return 'reshard' end
if ARGV[3] == '' then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('ZREM', KEYS[2], ARGV[1])
else
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
  redis.call('ZADD', KEYS[2], 0, ARGV[1])
end
if KEYS[3] then append(3, 4) end
return 'ok'
