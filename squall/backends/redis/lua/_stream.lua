-- The stream library. KEYS[at..at+2]: registry, seq hash, shard stream (keys.stream_append).
-- ARGV[a..a+5]: stream, shard count the caller used, shard, partition key, data, now.

-- A missing stream is created with one shard; false if the caller used another count.
local function shards_ok(at, a)
  if redis.call('HSETNX', KEYS[at], ARGV[a], 1) == 1 then return ARGV[a+1] == '1' end
  return redis.call('HGET', KEYS[at], ARGV[a]) == ARGV[a+1]
end

-- Append one record; its seq comes from the shard's counter and is its entry id `<seq>-0`.
local function append(at, a)
  local seq = redis.call('HINCRBY', KEYS[at+1], ARGV[a+2], 1)
  redis.call('XADD', KEYS[at+2], string.format('%d-0', seq), 'k', ARGV[a+3], 'd', ARGV[a+4], 't', ARGV[a+5])
  return seq
end
