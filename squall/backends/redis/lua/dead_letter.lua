-- include: _queue.lua
-- KEYS: queue, dlq. ARGV: receipt, now, dlq name.
local q = queue(1)
local slot = held(q, ARGV[1])
if not slot then return 0 end
move(q, {slot}, queue(1 + #QUEUE_PARTS), ARGV[2])
wake(ARGV[3])
return 1
