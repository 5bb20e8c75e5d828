-- include: _queue.lua
-- KEYS: queue (FIFO). ARGV: now, visible at, end of the deduplication window, then
-- (message JSON, message id, group, deduplication id) for each entry.
-- Returns each entry's message id (see insert_fifo).
local entries = {}
for i = 4, #ARGV, 4 do
  entries[#entries + 1] = {ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]}
end
return insert_fifo(queue(1), entries, ARGV[1], ARGV[2], ARGV[3])
