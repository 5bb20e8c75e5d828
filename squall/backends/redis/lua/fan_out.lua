-- include: _queue.lua
-- A publish fanned out (Queues.fan_out): messages into several queues and counts added
-- to a table's items, in one script.
-- KEYS: each queue's keys (QUEUE_PARTS order), then the counter table's items and keys.
-- ARGV: now, the number of queues, then per queue its name, its message count and its
-- messages (JSON), then (counter key, count) pairs.
local now = ARGV[1]
local queues = tonumber(ARGV[2])
local at = 3
for i = 1, queues do
  local q = queue(1 + (i - 1) * #QUEUE_PARTS)
  local name, count = ARGV[at], tonumber(ARGV[at + 1])
  local msgs, visible_at = {}, {}
  for j = 1, count do
    msgs[j] = ARGV[at + 1 + j]
    visible_at[j] = now
  end
  insert(q, msgs, visible_at)
  wake(name)
  at = at + 2 + count
end
local items, index = KEYS[queues * #QUEUE_PARTS + 1], KEYS[queues * #QUEUE_PARTS + 2]
for i = at, #ARGV, 2 do
  local key, count = ARGV[i], tonumber(ARGV[i + 1])
  local stored = redis.call('HGET', items, key)
  local value, version = count, 1
  if stored then
    local item = cjson.decode(stored)
    version = item.ver + 1
    if type(item.v) == 'number' and item.v == math.floor(item.v) then value = item.v + count end
  end
  redis.call('HSET', items, key, string.format('{"v":%d,"ver":%d}', value, version))
  redis.call('ZADD', index, 0, key)
end
