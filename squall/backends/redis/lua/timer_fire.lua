-- include: _queue.lua
-- A claimed timer fires into a queue: its messages and its replacement in one atomic step
-- (Timers.timer_fire).
-- KEYS: at, due, payload, rcpt of the timer group, then the queue's keys.
-- ARGV: key, receipt, queue name, now, next due ('' = none), next payload, message JSON...
if redis.call('HGET', KEYS[4], ARGV[1]) ~= ARGV[2] then return 0 end
local q = queue(5)
local msgs, visible_at = {}, {}
for i = 7, #ARGV do
  msgs[#msgs + 1] = ARGV[i]
  visible_at[#visible_at + 1] = ARGV[4]
end
if #msgs > 0 then
  insert(q, msgs, visible_at)
  wake(ARGV[3])
end
if ARGV[5] == '' then
  redis.call('ZREM', KEYS[1], ARGV[1])
  for i = 2, 4 do redis.call('HDEL', KEYS[i], ARGV[1]) end
else
  redis.call('ZADD', KEYS[1], ARGV[5], ARGV[1])
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[5])
  redis.call('HSET', KEYS[3], ARGV[1], ARGV[6])
  redis.call('HDEL', KEYS[4], ARGV[1])
end
return 1
