-- include: _queue.lua
-- include: _receive.lua
-- KEYS: queue. ARGV: receipt, visible at, 1 to take the receive back.
local q = queue(1)
if not release(q, ARGV[1], ARGV[2], ARGV[3] == '1') then return 0 end
wake(q.name)
return 1
