-- include: _queue.lua
-- KEYS: queue. ARGV: limit (> 0). Returns {message JSON, receive count, first received at}.
local q = queue(1)
local out = {}
for _, slot in ipairs(redis.call('ZRANGE', q.order, 0, tonumber(ARGV[1]) - 1)) do
  out[#out + 1] = {redis.call('HGET', q.msg, slot), redis.call('HGET', q.count, slot) or '0',
                   redis.call('HGET', q.first, slot) or '0'}
end
return out
