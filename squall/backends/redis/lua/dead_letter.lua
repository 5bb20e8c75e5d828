-- include: _queue.lua
-- KEYS: queue, dlq. ARGV: receipt, now, dlq name, attributes to add ('' for none: the
-- members of a JSON object, spliced into the message's attributes object, which the
-- compact JSON the client stores puts just before its last member, "sent_at").
local q = queue(1)
local slot = held(q, ARGV[1])
if not slot then return 0 end
if ARGV[4] ~= '' then
  local text = redis.call('HGET', q.msg, slot)
  local head, tail = string.match(text, '^(.*)}(,"sent_at":[^,}]+})$')
  if not head then return redis.error_reply('unexpected message layout') end
  local sep = string.sub(head, -1) == '{' and '' or ','
  redis.call('HSET', q.msg, slot, head .. sep .. ARGV[4] .. '}' .. tail)
end
if move(q, {slot}, queue(1 + #QUEUE_PARTS), ARGV[2]) then wake(q.name) end  -- a FIFO group unblocked
wake(ARGV[3])
return 1
