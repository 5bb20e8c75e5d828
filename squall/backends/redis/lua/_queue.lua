-- The queue library: a queue's keys, and the moves every queue script is made of.
-- Key layout: squall/backends/redis/keys.py (QUEUE_PARTS comes from there).

-- The keys of the queue whose first key is KEYS[at], by part name (q.vis, q.msg...).
local function queue(at)
  local q = {}
  for i, part in ipairs(QUEUE_PARTS) do q[part] = KEYS[at + i - 1] end
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

-- Append messages (JSON texts) to queue q, message i visible at visible_at[i]; returns
-- their slots. One INCRBY reserves every sequence number.
local function insert(q, msgs, visible_at)
  if #msgs == 0 then return {} end
  local first_seq = redis.call('INCRBY', q.seq, #msgs) - #msgs + 1
  local slots, bodies, visible, order = {}, {}, {}, {}
  for i, msg in ipairs(msgs) do
    local seq = first_seq + i - 1
    local slot = string.format('%016d', seq)
    slots[i] = slot
    bodies[2 * i - 1], bodies[2 * i] = slot, msg
    visible[2 * i - 1], visible[2 * i] = visible_at[i], slot
    order[2 * i - 1], order[2 * i] = seq, slot
  end
  chunked('HSET', q.msg, bodies)
  chunked('ZADD', q.vis, visible)
  chunked('ZADD', q.order, order)
  return slots
end

local function remove(q, slots)
  for _, h in ipairs({q.msg, q.count, q.first, q.rcpt}) do chunked('HDEL', h, slots) end
  for _, z in ipairs({q.vis, q.new, q.order}) do chunked('ZREM', z, slots) end
end

-- Tell watchers (Queues.watch_enqueues) that a message may have become visible in a queue.
local function wake(name)
  redis.call('PUBLISH', WAKE_CHANNEL, name)
end

-- Move messages to the tail of queue dst in send order, visible now, as never received.
local function move(src, slots, dst, now)
  table.sort(slots)  -- zero-padded seqs: text order is send order
  local msgs, visible_at = hmget(src.msg, slots), {}
  for i = 1, #slots do visible_at[i] = now end
  remove(src, slots)
  insert(dst, msgs, visible_at)
end

-- The slot a receipt names, if the receipt is still current.
local function held(q, receipt)
  local slot = string.match(receipt, '^(%d+):')
  if slot and redis.call('HGET', q.rcpt, slot) == receipt then return slot end
  return nil
end
