-- include: _queue.lua
-- A publish fanned out (Queues.fan_out): messages into several queues and counts added
-- to a table's items, in one script; a FIFO topic's publish deduplicated and numbered too.
-- KEYS: each queue's keys (QUEUE_PARTS order), the counter table's items and keys, then
-- for a FIFO publish its scope's seq, dedup and dedupx.
-- ARGV: now, end of the deduplication window, the number of queues, the publish's
-- deduplication id and message id ("" and "" for no FIFO publish), then per queue its
-- message count and per message its JSON, the byte offset of its sequence number
-- placeholder (-1: none) and, into a FIFO queue, its id, group and deduplication id;
-- then (counter key, count) pairs.
-- Returns {a duplicate's original message id or false, the sequence number or false, the
-- ids of the messages to FIFO queues in the order given}.
local now, window, queues = ARGV[1], ARGV[2], tonumber(ARGV[3])
local dedup_id, message_id = ARGV[4], ARGV[5]
local sequence = false
if dedup_id ~= '' then
  local scope = queues * #QUEUE_PARTS + 2
  local seq, dedup, dedupx = KEYS[scope + 1], KEYS[scope + 2], KEYS[scope + 3]
  local expired = redis.call('ZRANGEBYSCORE', dedupx, '-inf', now)
  chunked('ZREM', dedupx, expired)
  chunked('HDEL', dedup, expired)
  local original = redis.call('HGET', dedup, dedup_id)
  if original then
    local id, number = string.match(original, '^(%S+) (%S+)$')
    return {id, number, {}}
  end
  sequence = string.format('%020d', redis.call('INCR', seq))
  redis.call('HSET', dedup, dedup_id, message_id .. ' ' .. sequence)
  redis.call('ZADD', dedupx, window, dedup_id)
end
local ids, at = {}, 6
for i = 1, queues do
  local q = queue(1 + (i - 1) * #QUEUE_PARTS)
  local count = tonumber(ARGV[at])
  at = at + 1
  local msgs, visible_at, entries = {}, {}, {}
  for j = 1, count do
    local msg, offset = ARGV[at], tonumber(ARGV[at + 1])
    if offset >= 0 and sequence then
      msg = string.sub(msg, 1, offset) .. sequence .. string.sub(msg, offset + #sequence + 1)
    end
    if q.fifo then
      entries[j] = {msg, ARGV[at + 2], ARGV[at + 3], ARGV[at + 4]}
      at = at + 5
    else
      msgs[j], visible_at[j] = msg, now
      at = at + 2
    end
  end
  if q.fifo then
    for _, id in ipairs(insert_fifo(q, entries, now, now, window)) do ids[#ids + 1] = id end
  else
    insert(q, msgs, visible_at)
    wake(q.name)
  end
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
return {false, sequence, ids}
