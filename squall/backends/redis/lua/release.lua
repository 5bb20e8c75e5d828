-- include: _queue.lua
-- KEYS: queue. ARGV: receipt, visible at, queue name.
local q = queue(1)
local slot = held(q, ARGV[1])
if not slot then return 0 end
redis.call('ZADD', q.vis, ARGV[2], slot)
wake(ARGV[3])
return 1
