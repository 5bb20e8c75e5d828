-- include: _queue.lua
-- KEYS: queue. Returns the send time of the queue's first message in send order (full
-- precision, as text), or nil when the queue is empty.
local q = queue(1)
local head = redis.call('ZRANGE', q.order, 0, 0)[1]
if not head then return nil end
return string.format('%.17g', cjson.decode(redis.call('HGET', q.msg, head)).sent_at)
