-- include: _queue.lua
-- KEYS: the source queue, then each target queue. ARGV: now, the number of targets T, the T
-- target names (to wake), then per forwarded message: its receipt, the count n of new
-- messages, and n pairs (target index 1..T, message JSON). Returns how many receipts held.
local src = queue(1)
local now = tonumber(ARGV[1])
local count = tonumber(ARGV[2])
local names, targets, pending = {}, {}, {}
for t = 1, count do
  names[t] = ARGV[2 + t]
  targets[t] = queue(1 + #QUEUE_PARTS * t)
  pending[t] = {}
end
local current = 0
local i = 3 + count
while i <= #ARGV do
  local slot = held(src, ARGV[i])
  local n = tonumber(ARGV[i + 1])
  if slot then
    current = current + 1
    remove(src, {slot})
    for j = 0, n - 1 do
      local target = tonumber(ARGV[i + 2 + 2 * j])
      table.insert(pending[target], ARGV[i + 3 + 2 * j])
    end
  end
  i = i + 2 + 2 * n
end
for t = 1, count do
  if #pending[t] > 0 then
    local visible_at = {}
    for k = 1, #pending[t] do visible_at[k] = now end
    insert(targets[t], pending[t], visible_at)
    wake(names[t])
  end
end
return current
