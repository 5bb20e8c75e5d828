-- include: _queue.lua
-- KEYS: queue. ARGV: queue name, now, then (message JSON, visible_at) pairs.
local q = queue(1)
local now = tonumber(ARGV[2])
local msgs, visible_at = {}, {}
for i = 3, #ARGV, 2 do
  msgs[#msgs + 1] = ARGV[i]
  visible_at[#visible_at + 1] = ARGV[i + 1]
end
insert(q, msgs, visible_at, now)
wake(ARGV[1])
