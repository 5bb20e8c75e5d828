-- include: _queue.lua
-- KEYS: queue (FIFO). ARGV: now, visible at, end of the deduplication window, then
-- (message JSON, message id, group, deduplication id) for each entry.
-- Returns each entry's message id: the original's for a deduplication id seen within the
-- window (nothing is stored for it). A stored message's JSON gets its sequence number, the
-- slot's seq, as its first member.
local q = queue(1)
local now, at, window = ARGV[1], ARGV[2], ARGV[3]
local expired = redis.call('ZRANGEBYSCORE', q.dedupx, '-inf', now)
chunked('ZREM', q.dedupx, expired)
chunked('HDEL', q.dedup, expired)
local seq = tonumber(redis.call('GET', q.seq) or '0')  -- insert() hands out seq + 1, seq + 2...
local msgs, visible_at, groups, ids = {}, {}, {}, {}
for i = 4, #ARGV, 4 do
  local id, dedup = ARGV[i + 1], ARGV[i + 3]
  local original = redis.call('HGET', q.dedup, dedup)
  if original then
    id = original
  else
    seq = seq + 1
    msgs[#msgs + 1] = '{"sequence":"' .. string.format('%020d', seq) .. '",' .. string.sub(ARGV[i], 2)
    visible_at[#visible_at + 1] = at
    groups[#groups + 1] = ARGV[i + 2]
    redis.call('HSET', q.dedup, dedup, id)
    redis.call('ZADD', q.dedupx, window, dedup)
  end
  ids[#ids + 1] = id
end
local slots = insert(q, msgs, visible_at, groups)
if tonumber(at) > tonumber(now) then
  local delayed = {}
  for _, slot in ipairs(slots) do
    delayed[#delayed + 1] = at
    delayed[#delayed + 1] = slot
  end
  chunked('ZADD', q.new, delayed)
end
wake(q.name)
return ids
