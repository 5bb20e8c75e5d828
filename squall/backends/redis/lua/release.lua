-- include: _queue.lua
-- KEYS: queue. ARGV: receipt, visible at, queue name, 1 to take the receive back.
local q = queue(1)
local slot = held(q, ARGV[1])
if not slot then return 0 end
redis.call('ZADD', q.vis, ARGV[2], slot)
if q.fifo then refresh_heads(q, groups_of(q, {slot})) end
if ARGV[4] == '1' and tonumber(redis.call('HGET', q.count, slot) or '0') > 0 then
  redis.call('HINCRBY', q.count, slot, -1)
end
wake(ARGV[3])
return 1
