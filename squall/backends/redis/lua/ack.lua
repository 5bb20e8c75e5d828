-- include: _queue.lua
-- KEYS: queue. ARGV: receipts. Returns how many messages were deleted (a receipt given
-- twice counts once). Wakes the queue's watchers when that unblocked a FIFO group.
local q = queue(1)
local receipts, slots, seen = {}, {}, {}
for _, receipt in ipairs(ARGV) do
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
if remove(q, deleted) then wake(q.name) end
return #deleted
