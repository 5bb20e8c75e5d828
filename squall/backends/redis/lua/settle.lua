-- include: _queue.lua
-- include: _receive.lua
-- A consumer's turn (Queues.settle): acks, releases and dead letters, then a claim.
-- KEYS: queue [, dlq]. ARGV: now, visible again at, max messages, nonce, max receives ('' =
-- no redrive on claim), then the acks (a count, then receipts), the releases (a count,
-- then receipt, visible at, 1 to take the receive back, for each) and the dead letters (a
-- count, then receipt, attributes to add, for each). Returns what `claim` returns. Wakes
-- each queue's watchers once at most.
local q = queue(1)
local dlq = KEYS[1 + #QUEUE_PARTS] and queue(1 + #QUEUE_PARTS)
local now, at = ARGV[1], 7
local wake_queue, wake_dlq = false, false

local receipts = {}
for i = 1, tonumber(ARGV[6]) do receipts[i] = ARGV[at + i - 1] end
local _, unblocked = ack(q, receipts)
wake_queue = unblocked
at = at + #receipts
for _ = 1, tonumber(ARGV[at]) do
  if release(q, ARGV[at + 1], ARGV[at + 2], ARGV[at + 3] == '1') then wake_queue = true end
  at = at + 3
end
at = at + 1
for _ = 1, tonumber(ARGV[at]) do
  local current, freed = dead_letter(q, dlq, ARGV[at + 1], now, ARGV[at + 2])
  wake_dlq = wake_dlq or current
  wake_queue = wake_queue or freed
  at = at + 2
end
if wake_queue then wake(q.name) end
if wake_dlq then wake(dlq.name) end
local want = tonumber(ARGV[3])
if want == 0 then return '[]' end
local policy = ARGV[5] ~= '' and dlq or nil
return claim(q, policy, now, ARGV[2], want, ARGV[4], tonumber(ARGV[5]))
