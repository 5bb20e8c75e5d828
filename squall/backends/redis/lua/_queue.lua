-- The queue library: a queue's keys, and the moves every queue script is made of.
-- Key layout: squall/backends/redis/keys.py (QUEUE_PARTS comes from there).

-- The keys of the queue whose first key is KEYS[at], by part name (q.vis, q.msg...), its
-- name (q.name) and whether it is a FIFO queue (q.fifo).
local function queue(at)
  local q = {}
  for i, part in ipairs(QUEUE_PARTS) do q[part] = KEYS[at + i - 1] end
  q.name = string.sub(q.seq, #QUEUE_PREFIX + 1, -5)  -- without the ':seq'
  q.fifo = string.sub(q.name, -#FIFO_SUFFIX) == FIFO_SUFFIX
  return q
end

-- Run `command key args...` over a long argument list, CHUNK arguments (an even number, so
-- pairs stay whole) per call: one command per structure instead of one per message, and
-- never more arguments than unpack() allows.
local CHUNK = 1000
local function chunked(command, key, args)
  for i = 1, #args, CHUNK do
    redis.call(command, key, unpack(args, i, math.min(i + CHUNK - 1, #args)))
  end
end

-- HMGET over a long list of fields (false where a field is absent).
local function hmget(key, fields)
  local out = {}
  for i = 1, #fields, CHUNK do
    for _, value in ipairs(redis.call('HMGET', key, unpack(fields, i, math.min(i + CHUNK - 1, #fields)))) do
      out[#out + 1] = value
    end
  end
  return out
end

-- ---- FIFO message groups ----

local function member(group, slot)
  return group .. ' ' .. slot
end

-- Up to `count` slots of a group in send order, from the `offset`th on.
local function group_slots(q, group, offset, count)
  local slots = {}
  for i, m in ipairs(redis.call('ZRANGEBYLEX', q.gidx, '[' .. group .. ' ', '(' .. group .. '!',
                                'LIMIT', offset, count)) do
    slots[i] = string.sub(m, #group + 2)
  end
  return slots
end

-- The set of groups the slots belong to.
local function groups_of(q, slots)
  local groups = {}
  for _, group in ipairs(hmget(q.grp, slots)) do
    if group then groups[group] = true end
  end
  return groups
end

-- Point `heads` at the first message of each group (its visible_at), dropping the groups
-- left empty. Returns whether any of them still holds a message.
local function refresh_heads(q, groups)
  local remaining = false
  for group in pairs(groups) do
    local head = group_slots(q, group, 0, 1)[1]
    if head then
      redis.call('ZADD', q.heads, redis.call('ZSCORE', q.vis, head), group)
      remaining = true
    else
      redis.call('ZREM', q.heads, group)
    end
  end
  return remaining
end

-- Append messages (JSON texts) to queue q, message i visible at visible_at[i] (delayed
-- if after `now`) and, on a FIFO queue, in group groups[i]; returns their slots. One
-- INCRBY reserves every sequence number. A group new to the queue gets its head; an
-- existing group's head stays.
local function insert(q, msgs, visible_at, now, groups)
  if #msgs == 0 then return {} end
  local first_seq = redis.call('INCRBY', q.seq, #msgs) - #msgs + 1
  local slots, bodies, visible, order, delayed = {}, {}, {}, {}, {}
  for i, msg in ipairs(msgs) do
    local seq = first_seq + i - 1
    local slot = string.format('%016d', seq)
    slots[i] = slot
    bodies[2 * i - 1], bodies[2 * i] = slot, msg
    visible[2 * i - 1], visible[2 * i] = visible_at[i], slot
    order[2 * i - 1], order[2 * i] = seq, slot
    if tonumber(visible_at[i]) > tonumber(now) then
      delayed[#delayed + 1] = visible_at[i]
      delayed[#delayed + 1] = slot
    end
  end
  chunked('HSET', q.msg, bodies)
  chunked('ZADD', q.vis, visible)
  chunked('ZADD', q.order, order)
  chunked('ZADD', q.new, delayed)
  if q.fifo and groups then
    local grp, idx = {}, {}
    for i, slot in ipairs(slots) do
      grp[2 * i - 1], grp[2 * i] = slot, groups[i]
      idx[2 * i - 1], idx[2 * i] = 0, member(groups[i], slot)
      redis.call('ZADD', q.heads, 'NX', visible_at[i], groups[i])
    end
    chunked('HSET', q.grp, grp)
    chunked('ZADD', q.gidx, idx)
  end
  return slots
end

-- Delete messages. Returns whether a FIFO group they were in still holds messages (its
-- next message is its head now).
local function remove(q, slots)
  local groups = nil
  if q.fifo then
    groups = {}
    local members = {}
    for i, group in ipairs(hmget(q.grp, slots)) do
      if group then
        groups[group] = true
        members[#members + 1] = member(group, slots[i])
      end
    end
    chunked('ZREM', q.gidx, members)
  end
  for _, h in ipairs({q.msg, q.count, q.first, q.rcpt, q.grp}) do chunked('HDEL', h, slots) end
  for _, z in ipairs({q.vis, q.new, q.order}) do chunked('ZREM', z, slots) end
  return groups ~= nil and refresh_heads(q, groups)
end

-- Tell watchers (Queues.watch_enqueues) that a message may have become visible in a queue.
local function wake(name)
  redis.call('PUBLISH', WAKE_CHANNEL, name)
end

-- Move messages to the tail of queue dst in send order, visible now, as never received
-- (in their groups, between FIFO queues). Returns what `remove` returns for src.
local function move(src, slots, dst, now)
  table.sort(slots)  -- zero-padded seqs: text order is send order
  local msgs, visible_at = hmget(src.msg, slots), {}
  local groups = src.fifo and dst.fifo and hmget(src.grp, slots) or nil
  for i = 1, #slots do visible_at[i] = now end
  local remaining = remove(src, slots)
  insert(dst, msgs, visible_at, now, groups)
  return remaining
end

-- The slot a receipt names, if the receipt is still current.
local function held(q, receipt)
  local slot = string.match(receipt, '^(%d+):')
  if slot and redis.call('HGET', q.rcpt, slot) == receipt then return slot end
  return nil
end

-- Append messages to FIFO queue q, visible at `at`, each entry {message JSON, id, group,
-- deduplication id}: an entry whose deduplication id q accepted before the window's end
-- (`window` for the ones accepted now) stores nothing and answers the original's id. A
-- stored message's JSON gets its sequence number, the slot's seq, as its first member.
-- Returns each entry's message id.
local function insert_fifo(q, entries, now, at, window)
  local expired = redis.call('ZRANGEBYSCORE', q.dedupx, '-inf', now)
  chunked('ZREM', q.dedupx, expired)
  chunked('HDEL', q.dedup, expired)
  local seq = tonumber(redis.call('GET', q.seq) or '0')  -- insert() hands out seq + 1, seq + 2...
  local msgs, visible_at, groups, ids = {}, {}, {}, {}
  for _, entry in ipairs(entries) do
    local id, dedup = entry[2], entry[4]
    local original = redis.call('HGET', q.dedup, dedup)
    if original then
      id = original
    else
      seq = seq + 1
      msgs[#msgs + 1] = '{"sequence":"' .. string.format('%020d', seq) .. '",' .. string.sub(entry[1], 2)
      visible_at[#visible_at + 1] = at
      groups[#groups + 1] = entry[3]
      redis.call('HSET', q.dedup, dedup, id)
      redis.call('ZADD', q.dedupx, window, dedup)
    end
    ids[#ids + 1] = id
  end
  insert(q, msgs, visible_at, now, groups)
  wake(q.name)
  return ids
end
