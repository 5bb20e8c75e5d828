-- include: _queue.lua
-- include: _receive.lua
-- KEYS: queue. ARGV: receipts. Returns how many messages were deleted (a receipt given
-- twice counts once). Wakes the queue's watchers when that unblocked a FIFO group.
local q = queue(1)
local deleted, unblocked = ack(q, ARGV)
if unblocked then wake(q.name) end
return deleted
