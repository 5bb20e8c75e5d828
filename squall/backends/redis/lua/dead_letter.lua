-- include: _queue.lua
-- include: _receive.lua
-- KEYS: queue, dlq. ARGV: receipt, now, attributes to add ('' for none; see dead_letter
-- in _receive.lua).
local q, dlq = queue(1), queue(1 + #QUEUE_PARTS)
local current, unblocked = dead_letter(q, dlq, ARGV[1], ARGV[2], ARGV[3])
if not current then return 0 end
if unblocked then wake(q.name) end
wake(dlq.name)
return 1
