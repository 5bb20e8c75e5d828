-- include: _queue.lua
-- KEYS: queue. ARGV: queue name, now, then (message JSON, visible_at) pairs.
local q = queue(1)
local now = tonumber(ARGV[2])
local msgs, visible_at = {}, {}
for i = 3, #ARGV, 2 do
  msgs[#msgs + 1] = ARGV[i]
  visible_at[#visible_at + 1] = ARGV[i + 1]
end
local delayed = {}
for i, slot in ipairs(insert(q, msgs, visible_at)) do
  if tonumber(visible_at[i]) > now then
    delayed[#delayed + 1] = visible_at[i]
    delayed[#delayed + 1] = slot
  end
end
chunked('ZADD', q.new, delayed)
wake(ARGV[1])
