-- include: _queue.lua
-- KEYS: queue [, dlq]. ARGV: now, visible again at, max messages, nonce, max receives
-- ('' = no DLQ), dlq name.
-- Returns one JSON array of [message, receive count, first received at, receipt] rows,
-- parsed by one json.loads rather than one per message. The stored texts go in verbatim
-- (message JSON, the first-received time as Python wrote it); the count is an integer.
-- Picks the messages first, setting aside those out of receives, then updates each
-- structure once for all of them and moves the dead ones to the DLQ. Picked messages keep
-- their place at the head of `vis` until then, so the next range skips them by offset:
-- each message is picked at most once per claim.
local q = queue(1)
local dlq = KEYS[1 + #QUEUE_PARTS] and queue(1 + #QUEUE_PARTS)
local now, deadline, want, nonce = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local max_receives = tonumber(ARGV[5])
local slots, counts, dead = {}, {}, {}

-- Receive a slot once more: picked, or set aside as dead once out of receives.
local function pick(slot)
  local count = redis.call('HINCRBY', q.count, slot, 1)
  if dlq and count > max_receives then
    dead[#dead + 1] = slot
    return false
  end
  slots[#slots + 1] = slot
  counts[#counts + 1] = count
  return true
end

-- A FIFO group from its head on, while its messages are visible.
local function pick_group(group)
  local offset = 0
  while #slots < want do
    local found = group_slots(q, group, offset, want - #slots)
    if #found == 0 then return end
    offset = offset + #found
    for _, slot in ipairs(found) do
      if tonumber(redis.call('ZSCORE', q.vis, slot)) > tonumber(now) then return end
      pick(slot)
      if #slots == want then return end
    end
  end
end

if q.fifo then
  local offset = 0
  while #slots < want do
    local groups = redis.call('ZRANGEBYSCORE', q.heads, '-inf', now, 'LIMIT', offset, want - #slots)
    if #groups == 0 then break end
    offset = offset + #groups
    for _, group in ipairs(groups) do
      pick_group(group)
      if #slots == want then break end
    end
  end
else
  while #slots < want do
    local found = redis.call('ZRANGEBYSCORE', q.vis, '-inf', now, 'LIMIT', #slots + #dead, want - #slots)
    if #found == 0 then break end
    for _, slot in ipairs(found) do pick(slot) end
  end
end
local firsts, bodies = hmget(q.first, slots), hmget(q.msg, slots)
local new_firsts, receipts, visible_at, out = {}, {}, {}, {}
for i, slot in ipairs(slots) do
  local first = firsts[i]
  if not first then
    first = now
    new_firsts[#new_firsts + 1] = slot
    new_firsts[#new_firsts + 1] = now
  end
  local receipt = slot .. ':' .. nonce
  receipts[#receipts + 1] = slot
  receipts[#receipts + 1] = receipt
  visible_at[#visible_at + 1] = deadline
  visible_at[#visible_at + 1] = slot
  out[i] = '[' .. bodies[i] .. ',' .. counts[i] .. ',' .. first .. ',"' .. receipt .. '"]'
end
chunked('HSET', q.first, new_firsts)
chunked('HSET', q.rcpt, receipts)
chunked('ZADD', q.vis, visible_at)
chunked('ZREM', q.new, slots)
if q.fifo then refresh_heads(q, groups_of(q, slots)) end  -- their heads are in flight now
if #dead > 0 then
  move(q, dead, dlq, now)
  wake(ARGV[6])
end
return '[' .. table.concat(out, ',') .. ']'
