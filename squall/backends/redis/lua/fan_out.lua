-- include: _queue.lua
-- A fan-out (Queues.fan_out): messages into several queues and counts added to a table's
-- items, in one script; with it, claimed messages of one queue consumed (an entry made
-- from one written only if its receipt was current), or a FIFO topic's publish
-- deduplicated and numbered.
-- KEYS: the consumed queue's keys (QUEUE_PARTS order; only with receipts), each target
-- queue's keys, the counter table's items and keys (only with counts), then for a FIFO
-- publish its scope's seq, dedup and dedupx.
-- ARGV: now, end of the deduplication window, the number of queues Q, the publish's
-- deduplication id and message id ("" and "" for no FIFO publish), 1 with counts (else 0),
-- the number of receipts R and the R receipts; then per queue its message count and per
-- message its JSON, the byte offset of its sequence number placeholder (-1: none), the
-- index of its receipt (1..R; 0: none) and, into a FIFO queue, its id, group and
-- deduplication id; then (counter key, count) pairs.
-- Returns {a duplicate's original message id or false, the sequence number or false, the
-- ids of the messages to FIFO queues in the order given ('' where the receipt was not
-- current), per receipt 1 if it was current (its message is deleted) else 0}.
local now, window, queues = ARGV[1], ARGV[2], tonumber(ARGV[3])
local dedup_id, message_id = ARGV[4], ARGV[5]
local counted, receipts = ARGV[6] == '1', tonumber(ARGV[7])
local base = receipts > 0 and #QUEUE_PARTS or 0  -- the keys before the first target queue's
local after = base + queues * #QUEUE_PARTS       -- the keys before the counter table's
local sequence = false
if dedup_id ~= '' then
  local scope = after + (counted and 2 or 0)
  local seq, dedup, dedupx = KEYS[scope + 1], KEYS[scope + 2], KEYS[scope + 3]
  local expired = redis.call('ZRANGEBYSCORE', dedupx, '-inf', now)
  chunked('ZREM', dedupx, expired)
  chunked('HDEL', dedup, expired)
  local original = redis.call('HGET', dedup, dedup_id)
  if original then
    local id, number = string.match(original, '^(%S+) (%S+)$')
    return {id, number, {}, {}}
  end
  sequence = string.format('%020d', redis.call('INCR', seq))
  redis.call('HSET', dedup, dedup_id, message_id .. ' ' .. sequence)
  redis.call('ZADD', dedupx, window, dedup_id)
end
local current = {}
if receipts > 0 then
  local src, slots = queue(1), {}
  for r = 1, receipts do
    local slot = held(src, ARGV[7 + r])
    current[r] = slot and 1 or 0
    if slot then slots[#slots + 1] = slot end
  end
  if #slots > 0 then remove(src, slots) end
end
local ids, at = {}, 8 + receipts
for i = 1, queues do
  local q = queue(base + 1 + (i - 1) * #QUEUE_PARTS)
  local count = tonumber(ARGV[at])
  at = at + 1
  local msgs, visible_at, entries, kept = {}, {}, {}, {}
  for j = 1, count do
    local msg, offset, receipt = ARGV[at], tonumber(ARGV[at + 1]), tonumber(ARGV[at + 2])
    local keep = receipt == 0 or current[receipt] == 1
    if offset >= 0 and sequence then
      msg = string.sub(msg, 1, offset) .. sequence .. string.sub(msg, offset + #sequence + 1)
    end
    if q.fifo then
      if keep then entries[#entries + 1] = {msg, ARGV[at + 3], ARGV[at + 4], ARGV[at + 5]} end
      kept[j] = keep
      at = at + 6
    else
      if keep then msgs[#msgs + 1], visible_at[#visible_at + 1] = msg, now end
      at = at + 3
    end
  end
  if q.fifo then
    local answered, k = #entries > 0 and insert_fifo(q, entries, now, now, window) or {}, 0
    for j = 1, count do
      if kept[j] then
        k = k + 1
        ids[#ids + 1] = answered[k]
      else
        ids[#ids + 1] = ''
      end
    end
  elseif #msgs > 0 then
    insert(q, msgs, visible_at, now)
    wake(q.name)
  end
end
if counted then
  local items, index = KEYS[after + 1], KEYS[after + 2]
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
end
return {false, sequence, ids, current}
