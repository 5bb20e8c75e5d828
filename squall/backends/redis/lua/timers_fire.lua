-- include: _queue.lua
-- Claimed timers fire into queues: each firing's messages and its timer's replacement, all
-- in one atomic step (Timers.timers_fire).
-- KEYS: at, due, payload, rcpt of the timer group, then the keys of each queue in turn.
-- ARGV: now, queue count, queue names, then per firing: key, receipt, queue number
-- (1-based), next due ('' = none), next payload, when the messages become visible,
-- message count, message JSON...
-- Returns 1 or 0 per firing: fired, or a stale receipt (nothing changed).
local now, count = ARGV[1], tonumber(ARGV[2])
local out, i = {}, 3 + count
while i <= #ARGV do
  local key, receipt, number, next_due, payload = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2]), ARGV[i + 3], ARGV[i + 4]
  local at, n = ARGV[i + 5], tonumber(ARGV[i + 6])
  local msgs, visible_at = {}, {}
  for j = 1, n do
    msgs[j] = ARGV[i + 6 + j]
    visible_at[j] = at
  end
  i = i + 7 + n
  if redis.call('HGET', KEYS[4], key) ~= receipt then
    out[#out + 1] = 0
  else
    if n > 0 then
      insert(queue(5 + (number - 1) * #QUEUE_PARTS), msgs, visible_at, now)  -- delayed until `at`
      wake(ARGV[2 + number])
    end
    if next_due == '' then
      redis.call('ZREM', KEYS[1], key)
      for k = 2, 4 do redis.call('HDEL', KEYS[k], key) end
    else
      redis.call('ZADD', KEYS[1], next_due, key)
      redis.call('HSET', KEYS[2], key, next_due)
      redis.call('HSET', KEYS[3], key, payload)
      redis.call('HDEL', KEYS[4], key)
    end
    out[#out + 1] = 1
  end
end
return out
