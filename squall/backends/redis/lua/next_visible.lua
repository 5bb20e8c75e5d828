-- KEYS: the `vis` key of each queue asked about. Returns {index, earliest visible_at, ...}
-- for the queues that hold a message (the score as Redis prints it: exact).
local out = {}
for i, key in ipairs(KEYS) do
  local head = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  if head[2] then
    out[#out + 1] = i
    out[#out + 1] = head[2]
  end
end
return out
