-- The receive library: claiming messages and settling claimed ones, shared by the scripts
-- that do one of these (claim, ack, release, dead_letter) and by settle, which does them
-- all in one script. Needs _queue.lua.

-- Claim up to `want` visible messages of q, each invisible until `deadline` with a receipt
-- made of its slot and `nonce`. With `dlq` (a queue, nil for none), a message received
-- more than `max_receives` times moves there instead and the batch fills from behind it.
-- Returns one JSON array of [message, receive count, first received at, receipt] rows,
-- parsed by one json.loads rather than one per message. The stored texts go in verbatim
-- (message JSON, the first-received time as Python wrote it); the count is an integer.
-- Picks the messages first, setting aside those out of receives, then updates each
-- structure once for all of them and moves the dead ones to the DLQ. Picked messages keep
-- their place at the head of `vis` until then, so the next range skips them by offset:
-- each message is picked at most once per claim.
local function claim(q, dlq, now, deadline, want, nonce, max_receives)
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
    wake(dlq.name)
  end
  return '[' .. table.concat(out, ',') .. ']'
end

-- Delete the messages of q whose current receipt is given. Returns how many (a receipt
-- given twice counts once), and whether that unblocked a FIFO group.
local function ack(q, given)
  local receipts, slots, seen = {}, {}, {}
  for _, receipt in ipairs(given) do
    local slot = string.match(receipt, '^(%d+):')
    if slot and not seen[receipt] then
      seen[receipt] = true
      receipts[#receipts + 1] = receipt
      slots[#slots + 1] = slot
    end
  end
  local deleted = {}
  for i, current in ipairs(hmget(q.rcpt, slots)) do
    if current == receipts[i] then deleted[#deleted + 1] = slots[i] end
  end
  return #deleted, remove(q, deleted)
end

-- Make a claimed message visible again at `at`; with `uncount`, its last receive does not
-- count. Whether the receipt was current.
local function release(q, receipt, at, uncount)
  local slot = held(q, receipt)
  if not slot then return false end
  redis.call('ZADD', q.vis, at, slot)
  if q.fifo then refresh_heads(q, groups_of(q, {slot})) end
  if uncount and tonumber(redis.call('HGET', q.count, slot) or '0') > 0 then
    redis.call('HINCRBY', q.count, slot, -1)
  end
  return true
end

-- Move a claimed message to queue dlq, as never received, with `added` ('' for none: the
-- members of a JSON object, spliced into the message's attributes object, which the
-- compact JSON the client stores puts just before its last member, "sent_at"). Returns
-- whether the receipt was current, and whether that unblocked a FIFO group.
local function dead_letter(q, dlq, receipt, now, added)
  local slot = held(q, receipt)
  if not slot then return false, false end
  if added ~= '' then
    local text = redis.call('HGET', q.msg, slot)
    local head, tail = string.match(text, '^(.*)}(,"sent_at":[^,}]+})$')
    if not head then error(redis.error_reply('unexpected message layout')) end
    local sep = string.sub(head, -1) == '{' and '' or ','
    redis.call('HSET', q.msg, slot, head .. sep .. added .. '}' .. tail)
  end
  return true, move(q, {slot}, dlq, now)
end
