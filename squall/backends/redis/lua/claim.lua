-- include: _queue.lua
-- include: _receive.lua
-- KEYS: queue [, dlq]. ARGV: now, visible again at, max messages, nonce, max receives
-- ('' = no DLQ). Returns what `claim` in _receive.lua returns.
local dlq = KEYS[1 + #QUEUE_PARTS] and queue(1 + #QUEUE_PARTS)
return claim(queue(1), dlq, ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[5]))
